/** records as its own process. */
import { runService } from "@crm/kit";
import { build } from "./build.js";

export function start() {
  return runService("records", async ({ peer }) => build({ peer }));
}
