/** A record page's tasks and notes, fetched as a chunk of their own (markdown-it stays out of the lists). */
import { lazy, Suspense, type ComponentProps } from "react";

const Activity = lazy(() => import("./Activity").then((m) => ({ default: m.RecordActivity })));

export function RecordActivity(props: ComponentProps<typeof Activity>) {
  return (
    <Suspense fallback={null}>
      <Activity {...props} />
    </Suspense>
  );
}
