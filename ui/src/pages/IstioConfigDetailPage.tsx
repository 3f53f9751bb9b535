// Placeholder: replaced by the page's implementation.
export default function IstioConfigDetailPage() {
  return <h1>IstioConfigDetailPage</h1>;
}
