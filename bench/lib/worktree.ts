/**
 * Another commit of this repository as a runnable tree, for `npm run bench -- --compare REV`:
 * a detached `git worktree` in the temp folder, with node_modules taken from this checkout when
 * both lockfiles are the same (every package linked, the workspace packages pointing into the
 * worktree itself), else installed there with `npm ci`.
 */
import { execFileSync } from "node:child_process";
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { benchRoot } from "./child.js";

const git = (args: string[], cwd = benchRoot) => execFileSync("git", args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();

export interface Tree {
  /** What the report calls it: "working tree" or the commit as given (and its short hash). */
  label: string;
  root: string;
  /** Removes the worktree (nothing for the working tree). */
  remove(): void;
}

export function workingTree(): Tree {
  return { label: "working tree", root: benchRoot, remove() {} };
}

/** The commit `rev` checked out into a worktree of its own, ready to run (see the file's comment). */
export function commitTree(rev: string, log: (msg: string) => void = () => {}): Tree {
  let sha: string;
  try {
    sha = git(["rev-parse", "--verify", `${rev}^{commit}`]);
  } catch {
    throw new Error(`--compare ${rev}: not a commit of this repository`);
  }
  const root = join(tmpdir(), `crm-bench-${sha.slice(0, 12)}`);
  const remove = () => {
    try {
      git(["worktree", "remove", "--force", root]);
    } catch {
      rmSync(root, { recursive: true, force: true });
      git(["worktree", "prune"]);
    }
  };
  if (existsSync(root)) remove(); // a run that was killed: start clean
  log(`checking out ${rev} (${sha.slice(0, 12)}) into ${root}`);
  git(["worktree", "add", "--detach", root, sha]);
  try {
    const sameLock = readFileSync(join(benchRoot, "package-lock.json"), "utf8") === readFileSync(join(root, "package-lock.json"), "utf8");
    if (sameLock) {
      log("same package-lock.json: linking this checkout's node_modules");
      linkNodeModules(join(benchRoot, "node_modules"), join(root, "node_modules"));
      const web = join(benchRoot, "web", "node_modules");
      if (existsSync(web) && existsSync(join(root, "web"))) symlinkSync(web, join(root, "web", "node_modules"));
    } else {
      log("package-lock.json differs: npm ci in the worktree (a few minutes)");
      execFileSync("npm", ["ci", "--ignore-scripts", "--no-audit", "--no-fund"], { cwd: root, stdio: "inherit" });
    }
    // The all-in-one serves the built console: the same files in both trees (it is not what is measured).
    const dist = join(benchRoot, "web", "dist");
    if (existsSync(dist) && existsSync(join(root, "web")) && !existsSync(join(root, "web", "dist"))) symlinkSync(dist, join(root, "web", "dist"));
  } catch (err) {
    remove();
    throw err;
  }
  return { label: `${rev} (${sha.slice(0, 12)})`, root, remove };
}

/**
 * `to` gets a link to every package of `from`, except the workspace's own packages (node_modules/@crm,
 * relative links into the checkout): those are linked the same way, so they resolve inside `to`'s tree.
 */
export function linkNodeModules(from: string, to: string): void {
  mkdirSync(to, { recursive: true });
  for (const name of readdirSync(from)) {
    const src = join(from, name);
    if (name === "@crm") {
      mkdirSync(join(to, name));
      for (const pkg of readdirSync(src)) {
        const link = join(src, pkg);
        if (!lstatSync(link).isSymbolicLink()) continue;
        const target = readlinkSync(link); // "../../services/auth": the same path within the other tree
        if (existsSync(join(to, name, target))) symlinkSync(target, join(to, name, pkg));
      }
    } else symlinkSync(src, join(to, name));
  }
}
