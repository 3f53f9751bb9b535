// Placeholder: replaced by the page's implementation.
export default function GraphPage() {
  return <h1>GraphPage</h1>;
}
