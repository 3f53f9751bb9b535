// Placeholder: replaced by the page's implementation.
export default function IstioConfigPage() {
  return <h1>IstioConfigPage</h1>;
}
