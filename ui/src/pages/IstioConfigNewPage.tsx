// Placeholder: replaced by the page's implementation.
export default function IstioConfigNewPage() {
  return <h1>IstioConfigNewPage</h1>;
}
