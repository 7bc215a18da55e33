/**
 * The panel in a real Chromium against a real platform: `orchestrator start`
 * (Brain + embedded agent, process runtime) serving the built panel. One
 * browser and one platform for the whole file.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { testServiceEnv, testServiceSkipReason } from "@orchestrator/core/testing";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const ROOT = resolve(import.meta.dirname, "..");
const PANEL = join(ROOT, "dist/panel");
const ARTIFACTS = join(ROOT, "test/artifacts");
const BIN = resolve(ROOT, "../cli/src/bin.ts");
const PASSWORD = "panel-admin-password";
const VIEWER_PASSWORD = "panel-viewer-password";
const XSS = "<img src=x onerror=alert(1)>";

const skip = testServiceSkipReason("chromium");
if (skip && process.env.CI) throw new Error(`${skip} (required in CI)`);

let dir: string;
let port: number;
let base: string;
let platform: ChildProcess | null = null;
let output = "";
let browser: Browser;
let page: Page;
const dialogs: string[] = [];
const pageErrors: string[] = [];
const foreignRequests: string[] = [];

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolvePort(typeof address === "object" && address ? address.port : 0));
    });
  });
}

/** The panel must be built (CI runs `npm run build` first); built here when missing. */
function ensurePanelBuilt(): void {
  if (existsSync(join(PANEL, "index.html"))) return;
  try {
    execFileSync("npm", ["run", "build"], { cwd: ROOT, stdio: "pipe" });
  } catch (error) {
    throw new Error(
      `the panel is not built and building it failed; run 'npm run build -w packages/webpanel': ${(error as Error).message}`,
    );
  }
  if (!existsSync(join(PANEL, "index.html")))
    throw new Error(`no ${PANEL}/index.html after the build`);
}

async function startPlatform(): Promise<void> {
  const child = spawn(
    process.execPath,
    ["--import", import.meta.resolve("tsx"), "--conditions=@orchestrator/source", BIN, "start"],
    {
      cwd: dir,
      env: {
        ...process.env,
        ORCH_PORT: String(port),
        ORCH_ADMIN_PASSWORD: PASSWORD,
        ORCH_DATA_DIR: join(dir, "data"),
        ORCH_PANEL_DIR: PANEL,
        ORCH_HEARTBEAT_INTERVAL_MS: "1000",
        ORCH_OFFLINE_AFTER_MS: "5000",
        ORCH_SYNC_WAIT_MS: "1000",
      },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  platform = child;
  child.stdout!.on("data", (chunk) => {
    output += chunk;
  });
  child.stderr!.on("data", (chunk) => {
    output += chunk;
  });
  const deadline = Date.now() + 45_000;
  while (!output.includes("Orchestrator is running at")) {
    if (child.exitCode !== null) throw new Error(`the platform exited:\n${output}`);
    if (Date.now() > deadline) throw new Error(`the platform did not start:\n${output}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Admin API calls from the test itself (setup and checks, not what is tested). */
let cookie = "";
let csrf = "";
async function api(method: string, path: string, body?: unknown) {
  const response = await fetch(`${base}/api/v1${path}`, {
    method,
    headers: {
      cookie,
      "x-csrf-token": csrf,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

async function shot(name: string, target: Page = page): Promise<void> {
  await target.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

async function signIn(target: Page, username: string, password: string): Promise<void> {
  await target.goto(`${base}/`);
  await target.getByLabel("Username").fill(username);
  await target.getByLabel("Password").fill(password);
  await target.getByRole("button", { name: "Sign in" }).click();
  await target.getByRole("heading", { name: "Dashboard" }).waitFor();
}

describe.skipIf(skip !== null)("the panel in Chromium", { timeout: 60_000 }, () => {
  let instanceId = "";

  beforeAll(async () => {
    ensurePanelBuilt();
    await mkdir(ARTIFACTS, { recursive: true });
    dir = await mkdtemp(join(tmpdir(), "orch-panel-"));
    port = await freePort();
    base = `http://127.0.0.1:${port}`;
    await startPlatform();
    const login = await fetch(`${base}/api/v1/auth/login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ username: "admin", password: PASSWORD }),
    });
    const session = (await login.json()) as { token: string; csrfToken: string };
    cookie = `orch_session=${session.token}`;
    csrf = session.csrfToken;
    expect(
      (
        await api("POST", "/users", {
          username: "watcher",
          password: VIEWER_PASSWORD,
          role: "viewer",
        })
      ).status,
    ).toBe(201);
    browser = await chromium.launch({
      executablePath: testServiceEnv("chromium")!.ORCH_TEST_CHROMIUM,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
      ],
    });
    page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
    // Playwright's own errors (which locator, which state) beat a test timeout.
    page.setDefaultTimeout(15_000);
    page.on("pageerror", (error) => {
      pageErrors.push(error.message);
    });
    page.on("dialog", (dialog) => {
      dialogs.push(dialog.message());
      void dialog.dismiss();
    });
    // The panel fetches nothing but the Brain.
    page.on("request", (request) => {
      if (!request.url().startsWith(base) && !request.url().startsWith("data:"))
        foreignRequests.push(request.url());
    });
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    if (platform && platform.exitCode === null) {
      const exited = new Promise((r) => platform!.once("exit", r));
      platform.kill("SIGINT");
      await exited;
    }
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("signs in and shows the dashboard with the local node", async () => {
    await page.goto(`${base}/instances`);
    await page.waitForURL(/\/login/);
    await shot("login");
    await page.getByLabel("Username").fill("admin");
    await page.getByLabel("Password").fill("wrong password");
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect(page.getByRole("alert").textContent()).resolves.toMatch(/./);
    await page.getByLabel("Password").fill(PASSWORD);
    await page.getByRole("button", { name: "Sign in" }).click();
    // Back where it was going, signed in.
    await page.getByRole("heading", { name: "Instances" }).waitFor();
    expect(new URL(page.url()).pathname).toBe("/instances");
    await page.goto(`${base}/`);
    await page.getByRole("heading", { name: "Dashboard" }).waitFor();
    await page.locator(".status-ONLINE").first().waitFor();
    await expect(page.getByTestId("user-menu").textContent()).resolves.toContain("admin");
  });

  it("shows the API's validation error at the field, and hostile text as text", async () => {
    await page.goto(`${base}/instances/new`);
    await page.getByLabel("Greeting").waitFor();
    expect(await page.getByLabel("Greeting").inputValue()).toBe("Hello from Orchestrator");
    await page.getByLabel("Name").fill(XSS);
    await page.getByLabel("Greeting").fill(XSS);
    await page.getByRole("button", { name: "Create" }).click();
    const nameError = page.locator('[data-field-error="name"] .field-error');
    await nameError.waitFor();
    expect(await nameError.textContent()).toMatch(/letters, digits/);
    expect(await page.locator('[data-field-error="GREETING"] .field-error').count()).toBe(0);
    await shot("create-validation");

    await page.getByLabel("Name").fill("web-1");
    await page.getByRole("button", { name: "Create" }).click();
    await page.waitForURL(/\/instances\/inst/);
    instanceId = page.url().split("/").pop()!;
    // The greeting is shown as the literal text; no element was injected, no dialog.
    await expect(page.getByTestId("variables").textContent()).resolves.toContain(XSS);
    expect(await page.locator('img[src="x"]').count()).toBe(0);
    expect(dialogs).toEqual([]);
  });

  it("goes to RUNNING live (no reload), and the console streams the server's log", async () => {
    // A marker on the window survives only if the page is never reloaded.
    await page.evaluate(() => {
      (globalThis as unknown as { marker: number }).marker = 42;
    });
    await page
      .locator('[data-testid="instance-title"] + [data-testid="state"]', {
        hasText: "RUNNING",
      })
      .waitFor({ timeout: 45_000 });
    expect(await page.evaluate(() => (globalThis as unknown as { marker?: number }).marker)).toBe(
      42,
    );
    const console = page.getByTestId("console");
    await console.getByText(/listening on \d+/).waitFor();
    // A request to the game server shows up in the console live.
    const instance = (await api("GET", `/instances/${instanceId}`)).body;
    const served = await fetch(`http://127.0.0.1:${instance.ports.http}/greeting.txt`);
    expect(served.status).toBe(200);
    await console.getByText("GET /greeting.txt 200").waitFor();
    // The http port is a link to the server.
    const link = page.getByRole("link", { name: String(instance.ports.http) });
    expect(await link.getAttribute("href")).toBe(`http://127.0.0.1:${instance.ports.http}/`);
    await page.getByLabel("Input").fill("status");
    await page.getByRole("button", { name: "Send" }).click();
    await page.getByText("sent: status").waitFor();
  });

  it("shows live resource usage while it runs, and closes the stream on leaving", async () => {
    const statsStreams: { url: string; ended: boolean }[] = [];
    const track = (request: { url(): string }) => {
      if (request.url().endsWith(`/instances/${instanceId}/stats`))
        statsStreams.push({ url: request.url(), ended: false });
    };
    const ended = (request: { url(): string }) => {
      for (const stream of statsStreams) if (stream.url === request.url()) stream.ended = true;
    };
    page.on("request", track);
    page.on("requestfailed", ended);
    page.on("requestfinished", ended);
    try {
      // The stream opened with the page (before these listeners): reopen it.
      await page.goto(`${base}/instances/${instanceId}`);
      const memory = page.getByTestId("stats-memory");
      // The hello-http server's resident memory, against its limit or reservation.
      await memory
        .getByText(/^\d+(\.\d)? (KB|MB|GB) of 128 MB (limit|reservation) \(\d+ %\)$/)
        .waitFor({ timeout: 20_000 });
      const bar = page.getByRole("progressbar", { name: "Memory usage" });
      expect(await bar.getAttribute("aria-valuetext")).toMatch(/ of 128 MB /);
      await expect(page.getByTestId("stats-cpu").textContent()).resolves.toMatch(
        /\d+(\.\d+)? cores \(\d+ % of 0\.25 reserved\)/,
      );
      await expect(page.getByTestId("stats-updated").textContent()).resolves.toMatch(
        /updated (just now|\d+ s ago)/,
      );
      // A second sample draws the sparklines, named in words for screen readers.
      await page.getByRole("img", { name: /^Memory over the last \d+ s: lowest / }).waitFor();
      await shot("instance");
      expect(statsStreams.length).toBeGreaterThan(0);
      await page.getByRole("link", { name: "← Instances" }).click();
      await page.getByRole("heading", { name: "Instances" }).waitFor();
      await expect.poll(() => statsStreams.every((stream) => stream.ended)).toBe(true);
    } finally {
      page.off("request", track);
      page.off("requestfailed", ended);
      page.off("requestfinished", ended);
    }
  });

  it("lists instances live with filters, and shows nodes, templates and the diagram", async () => {
    await page.goto(`${base}/instances`);
    const row = page.locator(`tr[data-instance="${instanceId}"]`);
    await row.getByText("RUNNING").waitFor();
    await page.getByLabel("Search").fill("no-such-instance");
    expect(await row.count()).toBe(0);
    await page.getByLabel("Search").fill("web");
    await row.waitFor();
    await shot("instances");
    await page.goto(`${base}/`);
    await page.getByRole("link", { name: "RUNNING" }).waitFor();
    await shot("dashboard");
    await page.goto(`${base}/nodes`);
    await page.getByRole("progressbar", { name: "Memory" }).first().waitFor();
    await page
      .getByText(/Last heartbeat (just now|\d+ s ago)/)
      .first()
      .waitFor();
    await page.getByRole("button", { name: "Add a node" }).click();
    await expect(page.getByTestId("join-command").textContent()).resolves.toMatch(
      /^ORCH_BRAIN_URL=http:\/\/127\.0\.0\.1:\d+ ORCH_JOIN_TOKEN=\S+ orchestrator agent$/,
    );
    await shot("nodes");
    await page.goto(`${base}/templates/hello-http`);
    await page.getByRole("cell", { name: /GREETING/ }).waitFor();
    await shot("template");
    await page.goto(`${base}/lifecycle?state=RUNNING`);
    // One box per state of core's table.
    await page.locator("svg.diagram g[data-state]").first().waitFor();
    expect(await page.locator("svg.diagram g[data-state]").count()).toBe(12);
    await shot("lifecycle");
  });

  it("validates a template document inline", async () => {
    await page.goto(`${base}/templates/register`);
    await page.getByLabel("template.json").fill('{"name": "Bad Name", "layers": []}');
    const issues = page.getByTestId("template-issues");
    await issues.locator("li").first().waitFor();
    expect(await issues.textContent()).toMatch(/name/);
    expect(await page.getByRole("button", { name: "Register" }).isDisabled()).toBe(true);
  });

  it("explains why an instance waits while the node is drained, and places it after undrain", async () => {
    await page.goto(`${base}/nodes`);
    await page.getByRole("button", { name: "Drain" }).click();
    await page.getByText("DRAINING").first().waitFor();
    const created = await api("POST", "/instances", { template: "hello-http", name: "waiting" });
    expect(created.status).toBe(201);
    await page.goto(`${base}/instances/${created.body.id}`);
    const pending = page.getByTestId("pending-placement");
    await pending.waitFor({ timeout: 20_000 });
    expect(await pending.textContent()).toMatch(/drain/i);
    await shot("pending-placement");
    await page.goto(`${base}/nodes`);
    await page.getByRole("button", { name: "Undrain" }).click();
    await page.getByText("ONLINE").first().waitFor();
    await page.goto(`${base}/instances/${created.body.id}`);
    await page
      .locator('[data-testid="instance-title"] + [data-testid="state"]', { hasText: "RUNNING" })
      .waitFor({ timeout: 30_000 });
    expect((await api("DELETE", `/instances/${created.body.id}`)).status).toBe(202);
  });

  it("registers a new template version from JSON", async () => {
    await page.goto(`${base}/templates/register?from=hello-http`);
    const doc = page.getByLabel("template.json");
    await page.getByText("The document is valid.").waitFor();
    const definition = JSON.parse(await doc.inputValue());
    definition.description = "Greets, now from the panel";
    await doc.fill(JSON.stringify(definition, null, 2));
    await page.getByRole("button", { name: "Register" }).click();
    await page.waitForURL(/\/templates\/hello-http$/);
    await page.getByText("Greets, now from the panel").waitFor();
    expect(await page.getByLabel("Version").inputValue()).toBe("2");
  });

  it("manages users and API tokens, and shows the audit log (admin)", async () => {
    await page.goto(`${base}/users`);
    await page.getByRole("cell", { name: "watcher", exact: true }).waitFor();
    await page.getByLabel("Username").fill("x");
    await page.getByLabel("Password").fill("pw");
    await page.getByRole("button", { name: "Create user" }).click();
    // The API's schema error is shown at the username field.
    await page.locator(".field-error").first().waitFor();
    await page.goto(`${base}/tokens`);
    await page.getByLabel("Name").fill("ci");
    await page.getByLabel("Scopes (optional)").fill("instances:read");
    await page.getByRole("button", { name: "Create token" }).click();
    const secret = await page.locator(".secret-once").textContent();
    const check = await fetch(`${base}/api/v1/instances`, {
      headers: { authorization: `Bearer ${secret?.trim()}` },
    });
    expect(check.status).toBe(200);
    await page.getByRole("cell", { name: "instances:read" }).waitFor();
    await page.goto(`${base}/audit`);
    await page.getByRole("cell", { name: "instance.create" }).first().waitFor();
    await page.getByLabel("Action").fill("token.create");
    await page.getByRole("button", { name: "Filter" }).click();
    await page.getByRole("cell", { name: "token.create" }).first().waitFor();
    // token.create rows are in the unfiltered list too: wait for the filtered page to replace it.
    await page
      .getByRole("cell", { name: "instance.create" })
      .first()
      .waitFor({ state: "detached" });
    expect(await page.getByRole("cell", { name: "instance.create" }).count()).toBe(0);
    await shot("audit");
  });

  it("a viewer sees no actions", async () => {
    const context = await browser.newContext({ viewport: { width: 390, height: 844 } });
    const viewer = await context.newPage();
    await signIn(viewer, "watcher", VIEWER_PASSWORD);
    await viewer.goto(`${base}/instances/${instanceId}`);
    await viewer
      .getByTestId("console")
      .getByText(/listening on/)
      .waitFor();
    expect(await viewer.getByTestId("actions").count()).toBe(0);
    expect(await viewer.getByRole("button", { name: "Send" }).count()).toBe(0);
    await viewer.goto(`${base}/instances`);
    await viewer.locator(`tr[data-instance="${instanceId}"]`).waitFor();
    expect(await viewer.getByRole("link", { name: "New instance" }).count()).toBe(0);
    await shot("viewer-phone", viewer);
    await viewer.goto(`${base}/nodes`);
    await viewer.getByRole("progressbar", { name: "Memory" }).first().waitFor();
    expect(await viewer.getByRole("button", { name: /Drain|Add a node/ }).count()).toBe(0);
    // Admin pages are not in the menu and send a viewer back to the dashboard.
    expect(await viewer.getByRole("link", { name: "Audit log" }).count()).toBe(0);
    await viewer.goto(`${base}/users`);
    await viewer.getByRole("heading", { name: "Dashboard" }).waitFor();
    await context.close();
  });

  it("stops and destroys the instance from its page, live", async () => {
    await page.goto(`${base}/instances/${instanceId}`);
    const state = page.locator('[data-testid="instance-title"] + [data-testid="state"]');
    await state.getByText("RUNNING").waitFor();
    await page.getByRole("button", { name: "Stop" }).click();
    await state.getByText("STOPPED").waitFor({ timeout: 30_000 });
    // Samples exist only while the server runs.
    expect(await page.getByTestId("stats").count()).toBe(0);
    await page.getByRole("button", { name: "Destroy" }).click();
    await page.getByRole("button", { name: "Yes, destroy" }).click();
    await state.getByText("DESTROYED").waitFor({ timeout: 30_000 });
    // The timeline follows the events too.
    await page
      .getByTestId("timeline")
      .locator("li", { hasText: /→\s*DESTROYED/ })
      .waitFor();
    const timeline = await page.getByTestId("timeline").textContent();
    expect(timeline).toContain("STOPPED");
    expect(timeline).toContain("DESTROYED");
    expect((await api("GET", `/instances/${instanceId}`)).body.state).toBe("DESTROYED");
    expect(dialogs).toEqual([]);
    expect(pageErrors).toEqual([]);
    // Nothing but the Brain was ever fetched (no CDN fonts or scripts).
    expect(foreignRequests).toEqual([]);
  });
});
