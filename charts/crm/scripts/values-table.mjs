#!/usr/bin/env node
// Prints the README's values table from the "## @section" and "## @param key description" lines
// of charts/crm/values.yaml (bitnami's convention). Update the README with:
//   node charts/crm/scripts/values-table.mjs --write
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parse, stringify } from "yaml";

const chart = fileURLToPath(new URL("..", import.meta.url));

export function valuesTable(text = readFileSync(`${chart}/values.yaml`, "utf8")) {
  const values = parse(text);
  const get = (path) => path.split(".").reduce((v, k) => v?.[k], values);
  const cell = (s) => String(s).replace(/\|/g, "\\|");
  const out = [];
  for (const line of text.split("\n")) {
    let m = /^\s*## @section (.*)$/.exec(line);
    if (m) {
      out.push("", `### ${m[1]}`, "", "| Name | Description | Default |", "|---|---|---|");
      continue;
    }
    m = /^\s*## @param (\S+) (.*)$/.exec(line);
    if (!m) continue;
    const v = get(m[1]);
    let def;
    if (v !== null && typeof v === "object") {
      const empty = Array.isArray(v) ? v.length === 0 : Object.keys(v).length === 0;
      def = empty ? (Array.isArray(v) ? "`[]`" : "`{}`") : `\`${cell(stringify(v, { collectionStyle: "flow", lineWidth: 0 }).trim())}\``;
      if (def.length > 80) def = "see values.yaml";
    } else def = v === "" ? '`""`' : `\`${cell(v)}\``;
    out.push(`| \`${m[1]}\` | ${cell(m[2])} | ${def} |`);
  }
  return `${out.join("\n")}\n`;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const table = valuesTable();
  if (process.argv.includes("--write")) {
    const readme = readFileSync(`${chart}/README.md`, "utf8");
    const at = readme.indexOf("\n## Values\n");
    writeFileSync(`${chart}/README.md`, `${readme.slice(0, at)}\n## Values\n${table}`);
  } else process.stdout.write(table);
}
