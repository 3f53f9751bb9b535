// Placeholder: replaced by the page's implementation.
export default function ServicesPage() {
  return <h1>ServicesPage</h1>;
}
