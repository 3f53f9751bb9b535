// Placeholder: replaced by the page's implementation.
export default function WorkloadsPage() {
  return <h1>WorkloadsPage</h1>;
}
