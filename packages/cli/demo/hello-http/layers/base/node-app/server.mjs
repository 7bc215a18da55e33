// A tiny static HTTP server (the shared base layer of the demo): serves the
// files in ./public on $PORT and says "listening on" when it is ready.
import { readFile } from "node:fs/promises";
import { createServer } from "node:http";
import { extname, join, resolve, sep } from "node:path";

const port = Number(process.env.PORT);
const root = resolve("public");
const types = {
  ".html": "text/html; charset=utf-8",
  ".txt": "text/plain; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
};

const server = createServer(async (request, response) => {
  const path = new URL(request.url ?? "/", "http://localhost").pathname;
  const file = resolve(join(root, path === "/" ? "index.html" : decodeURIComponent(path)));
  if (file !== root && !file.startsWith(root + sep)) {
    response.writeHead(403).end();
    return;
  }
  try {
    const body = await readFile(file);
    response.writeHead(200, { "content-type": types[extname(file)] ?? "application/octet-stream" });
    response.end(body);
  } catch {
    response.writeHead(404, { "content-type": "text/plain; charset=utf-8" }).end("not found\n");
  }
  console.log(`${request.method} ${path} ${response.statusCode}`);
});

server.listen(port, () => console.log(`listening on ${port}`));
process.on("SIGTERM", () => {
  console.log("stopping");
  server.close(() => process.exit(0));
});
