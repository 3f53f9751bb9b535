// What the Traffic Shifting wizard will write (the server generates the same objects, as Kiali's wizard does):
// a DestinationRule with one subset per versioned workload and a VirtualService with one weighted HTTP route.
import { stringify } from "yaml";

export interface ShiftWorkload { name: string; version: string; weight: number }

export const WIZARD_LABEL = "kiali_wizard";
export const WIZARD_TYPE = "traffic_shifting";

export function wizardObjects(service: string, namespace: string, host: string | undefined, workloads: ShiftWorkload[]) {
  const fqdn = host || `${service}.${namespace}.svc.cluster.local`;
  const labels = { [WIZARD_LABEL]: WIZARD_TYPE };
  const destinationRule = {
    apiVersion: "networking.istio.io/v1",
    kind: "DestinationRule",
    metadata: { name: service, namespace, labels },
    spec: {
      host: fqdn,
      subsets: workloads.map((w) => ({ name: w.version, labels: { version: w.version } })),
    },
  };
  const virtualService = {
    apiVersion: "networking.istio.io/v1",
    kind: "VirtualService",
    metadata: { name: service, namespace, labels },
    spec: {
      hosts: [service],
      http: [{
        route: workloads.filter((w) => w.weight > 0).map((w) => ({ destination: { host: fqdn, subset: w.version }, weight: w.weight })),
      }],
    },
  };
  return { destinationRule, virtualService };
}

export function wizardPreviewYaml(service: string, namespace: string, host: string | undefined, workloads: ShiftWorkload[]): string {
  const { destinationRule, virtualService } = wizardObjects(service, namespace, host, workloads);
  return `${stringify(destinationRule)}---\n${stringify(virtualService)}`;
}
