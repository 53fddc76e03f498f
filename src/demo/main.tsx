/** The demo page's entry: bundled by scripts/build-web.ts into public/build/demo.js. */
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { App } from "./app";
import { readParams } from "./params";

const container = document.getElementById("root");
if (container === null) throw new Error("demo: no #root element in the page");
createRoot(container).render(
  <StrictMode>
    <App initial={readParams(location.search)} />
  </StrictMode>,
);
