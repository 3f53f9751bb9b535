// Starting points of the "Create" page, one per kind (networking.istio.io/v1, as Kiali writes them).
export const CREATE_KINDS = ["VirtualService", "DestinationRule", "Gateway", "ServiceEntry"] as const;
export type CreateKind = (typeof CREATE_KINDS)[number];

export function isCreateKind(k: string | null | undefined): k is CreateKind {
  return !!k && (CREATE_KINDS as readonly string[]).includes(k);
}

export function template(kind: CreateKind, namespace: string): string {
  const head = (name: string) =>
    `apiVersion: networking.istio.io/v1\nkind: ${kind}\nmetadata:\n  name: ${name}\n  namespace: ${namespace}\nspec:\n`;
  switch (kind) {
    case "VirtualService":
      return head("my-service") +
        "  hosts:\n  - my-service\n  http:\n  - route:\n    - destination:\n        host: my-service\n        subset: v1\n      weight: 100\n";
    case "DestinationRule":
      return head("my-service") +
        `  host: my-service.${namespace}.svc.cluster.local\n  subsets:\n  - name: v1\n    labels:\n      version: v1\n`;
    case "Gateway":
      return head("my-gateway") +
        "  selector:\n    istio: ingressgateway\n  servers:\n  - port:\n      number: 80\n      name: http\n      protocol: HTTP\n    hosts:\n    - \"*\"\n";
    case "ServiceEntry":
      return head("external-api") +
        "  hosts:\n  - api.example.com\n  location: MESH_EXTERNAL\n  resolution: DNS\n  ports:\n  - number: 443\n    name: https\n    protocol: TLS\n";
  }
}
