import { NavLink, Navigate, Route, Routes, useLocation } from "react-router-dom";
import { ToastProvider } from "./components/Toast";
import { LoginDialog } from "./components/LoginDialog";
import OverviewPage from "./pages/OverviewPage";
import GraphPage from "./pages/GraphPage";
import AppsPage from "./pages/AppsPage";
import WorkloadsPage from "./pages/WorkloadsPage";
import WorkloadDetailPage from "./pages/WorkloadDetailPage";
import ServicesPage from "./pages/ServicesPage";
import ServiceDetailPage from "./pages/ServiceDetailPage";
import IstioConfigPage from "./pages/IstioConfigPage";
import IstioConfigDetailPage from "./pages/IstioConfigDetailPage";
import IstioConfigNewPage from "./pages/IstioConfigNewPage";
import RolloutsPage from "./pages/RolloutsPage";
import RolloutDetailPage from "./pages/RolloutDetailPage";

const NAV: [string, string][] = [
  ["/overview", "Overview"],
  ["/graph", "Traffic Graph"],
  ["/applications", "Applications"],
  ["/workloads", "Workloads"],
  ["/services", "Services"],
  ["/istio", "Istio Config"],
  ["/rollouts", "Rollouts"],
];

function Nav() {
  const { search } = useLocation();
  const ns = new URLSearchParams(search).get("namespace");
  const q = ns ? `?namespace=${encodeURIComponent(ns)}` : "";
  return (
    <nav className="sidebar" aria-label="Main">
      <div className="brand">Sluice</div>
      {NAV.map(([to, label]) => (
        <NavLink key={to} to={to + q} className={({ isActive }) => (isActive ? "nav-item active" : "nav-item")}>
          {label}
        </NavLink>
      ))}
    </nav>
  );
}

export default function App() {
  return (
    <ToastProvider>
      <div className="layout">
        <Nav />
        <main className="content">
          <Routes>
            <Route path="/" element={<Navigate to="/overview" replace />} />
            <Route path="/overview" element={<OverviewPage />} />
            <Route path="/graph" element={<GraphPage />} />
            <Route path="/applications" element={<AppsPage />} />
            <Route path="/workloads" element={<WorkloadsPage />} />
            <Route path="/namespaces/:ns/workloads/:name" element={<WorkloadDetailPage />} />
            <Route path="/services" element={<ServicesPage />} />
            <Route path="/namespaces/:ns/services/:name" element={<ServiceDetailPage />} />
            <Route path="/istio" element={<IstioConfigPage />} />
            <Route path="/istio/new" element={<IstioConfigNewPage />} />
            <Route path="/namespaces/:ns/istio/:kind/:name" element={<IstioConfigDetailPage />} />
            <Route path="/rollouts" element={<RolloutsPage />} />
            <Route path="/namespaces/:ns/rollouts/:name" element={<RolloutDetailPage />} />
            <Route path="*" element={<div className="empty">Page not found.</div>} />
          </Routes>
        </main>
      </div>
      <LoginDialog />
    </ToastProvider>
  );
}
