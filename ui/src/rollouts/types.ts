// The console API's view of an Argo Rollout (src/sluice/rollouts/summary.py).

export interface RolloutRow {
  name: string; namespace: string; phase: string; message: string; strategy: string;
  currentStepIndex: number | null; stepCount: number; setWeight: number; actualWeight: number | null;
  replicas: { desired: number; ready: number; available: number; updated: number };
  stableRS?: string; currentPodHash?: string; aborted: boolean; paused: boolean;
  canaryService?: string; stableService?: string; virtualServices: string[]; destinationRule?: string;
}

export interface Measurement { phase: string; value?: string; message: string; startedAt?: string; finishedAt?: string }
export interface MetricResult {
  name: string; phase: string; message: string; count: number; successful: number; failed: number;
  inconclusive: number; error: number; measurements: Measurement[];
}
export interface AnalysisRunInfo { name: string; phase: string; message: string; startedAt?: string; revision?: string; metrics: MetricResult[] }
export interface ReplicaSetInfo { name: string; revision?: string; hash?: string; role: string; replicas: number; ready: number; images: string[]; pods: string[] }
export interface RolloutDetail extends RolloutRow {
  steps: { index: number; text: string; state: "done" | "current" | "pending" }[];
  replicaSets: ReplicaSetInfo[];
  analysisRuns: AnalysisRunInfo[];
  weightHistory: { time: string; weight: number }[];
  events: { type: string; reason: string; message: string; time: string; count: number }[];
}

/** Argo's phase icons (kubectl argo rollouts get). */
export const PHASE_ICONS: Record<string, string> = {
  Progressing: "◌", Paused: "॥", Healthy: "✔", Degraded: "✖", Error: "⚠", InvalidSpec: "⚠", Unknown: "?",
};
export const RUN_ICONS: Record<string, string> = {
  Successful: "✔", Running: "◌", Pending: "◷", Inconclusive: "?", Failed: "✖", Error: "⚠",
};

export function stepText(r: RolloutRow): string {
  return r.currentStepIndex === null || r.currentStepIndex === undefined || !r.stepCount ? "-" : `${r.currentStepIndex}/${r.stepCount}`;
}

/** Points of the canary weight over time for a step chart: each update holds until the next one (and until now). */
export function weightSteps(history: { time: string; weight: number }[], now: number): { t: number; w: number }[] {
  const pts: { t: number; w: number }[] = [];
  for (const h of history) {
    const t = Date.parse(h.time);
    if (Number.isNaN(t)) continue;
    if (pts.length) pts.push({ t, w: pts[pts.length - 1].w });
    pts.push({ t, w: h.weight });
  }
  if (pts.length) pts.push({ t: Math.max(now, pts[pts.length - 1].t), w: pts[pts.length - 1].w });
  return pts;
}
