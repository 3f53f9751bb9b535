import { useEffect } from "react";

/** Asks the browser to confirm leaving the page (reload, close, typed URL) while there are unsaved changes. */
export function useUnsavedChangesGuard(dirty: boolean) {
  useEffect(() => {
    if (!dirty) return;
    const onBeforeUnload = (e: BeforeUnloadEvent) => {
      e.preventDefault();
      // Older browsers show this text; current ones show their own.
      e.returnValue = "You have unsaved changes, are you sure you want to leave?";
      return e.returnValue;
    };
    window.addEventListener("beforeunload", onBeforeUnload);
    return () => window.removeEventListener("beforeunload", onBeforeUnload);
  }, [dirty]);
}
