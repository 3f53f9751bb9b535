// Placeholder: replaced by the page's implementation.
export default function OverviewPage() {
  return <h1>OverviewPage</h1>;
}
