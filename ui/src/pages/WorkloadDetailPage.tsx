// Placeholder: replaced by the page's implementation.
export default function WorkloadDetailPage() {
  return <h1>WorkloadDetailPage</h1>;
}
