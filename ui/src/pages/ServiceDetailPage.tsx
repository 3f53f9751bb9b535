// Placeholder: replaced by the page's implementation.
export default function ServiceDetailPage() {
  return <h1>ServiceDetailPage</h1>;
}
