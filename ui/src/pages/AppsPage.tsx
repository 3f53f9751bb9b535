// Placeholder: replaced by the page's implementation.
export default function AppsPage() {
  return <h1>AppsPage</h1>;
}
