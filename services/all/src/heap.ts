/**
 * The young generation during start-up. A process allocates its lifelong objects (modules,
 * protobuf descriptors, schemas, prepared tables) in one burst at start. V8 doubles its young
 * generation (two semi-spaces, up to 16 MB each on 64-bit) each time it sees that much survive, so a
 * service that has just started holds ~32 MB of young-generation pages sized for that burst, and V8
 * gives them back only when its memory reducer has seen several seconds of idleness (measured:
 * after 10–45 s, or not within a minute). Holding the young generation at its initial size until
 * the process is ready moves the start-up objects to the old generation at once (they live as long
 * as the process); afterwards the young generation grows under load exactly as before.
 * Measured in bench/README.md (idle-memory): a service process idles ≈ 10–20 MB lower.
 */
import v8 from "node:v8";

const flag = "semi-space-growth-factor";

/** Holds the young generation at its size until the returned function is called (once ready). */
export function holdYoungGeneration(execArgv: readonly string[] = process.execArgv): () => void {
  // Someone who set the factor on the command line gets exactly that.
  if (execArgv.some((a) => a.replace(/_/g, "-").startsWith(`--${flag}`))) return () => {};
  v8.setFlagsFromString(`--${flag}=1`);
  let held = true;
  return () => {
    if (!held) return;
    held = false;
    v8.setFlagsFromString(`--${flag}=2`); // V8's default
  };
}
