// Validates the pending changesets: each names existing workspace packages with a
// valid bump and says what changed. With `--since <ref>` (a branch's base), it also
// requires a changeset for every published package whose src/ changed since then.
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

const packages = new Map();
for (const dir of readdirSync("packages")) {
  const pkg = JSON.parse(readFileSync(join("packages", dir, "package.json"), "utf8"));
  packages.set(pkg.name, { dir, private: pkg.private === true });
}

const problems = [];
const covered = new Set();
const files = readdirSync(".changeset").filter((f) => f.endsWith(".md") && f !== "README.md");
for (const file of files) {
  const text = readFileSync(join(".changeset", file), "utf8");
  const match = /^---\n([\s\S]*?)\n---\n([\s\S]*)$/.exec(text);
  if (!match) {
    problems.push(`${file}: no front matter`);
    continue;
  }
  for (const line of match[1].split("\n").filter((l) => l.trim())) {
    const entry = /^"?([^"]+)"?:\s*(patch|minor|major)\s*$/.exec(line.trim());
    if (!entry) problems.push(`${file}: cannot read '${line}'`);
    else if (!packages.has(entry[1])) problems.push(`${file}: unknown package ${entry[1]}`);
    else covered.add(entry[1]);
  }
  if (!match[2].trim()) problems.push(`${file}: says nothing about the change`);
}

const sinceIndex = process.argv.indexOf("--since");
if (sinceIndex > 0) {
  const ref = process.argv[sinceIndex + 1];
  const changed = execFileSync("git", ["diff", "--name-only", `${ref}...HEAD`], {
    encoding: "utf8",
  });
  for (const [name, { dir, private: isPrivate }] of packages) {
    const touched = changed.split("\n").some((f) => f.startsWith(`packages/${dir}/src/`));
    if (touched && !isPrivate && !covered.has(name))
      problems.push(`${name} changed since ${ref} without a changeset`);
  }
}

if (problems.length > 0) {
  console.error(`changesets: ${problems.length} problem(s)\n  ${problems.join("\n  ")}`);
  process.exit(1);
}
console.log(
  `changesets: ${files.length} pending, covering ${[...covered].sort().join(", ") || "nothing"}`,
);
