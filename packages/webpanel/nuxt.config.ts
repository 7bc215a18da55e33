// The panel is a static SPA served by the Brain at `/`: no server rendering,
// no telemetry, no fonts or scripts from other hosts.

export default defineNuxtConfig({
  compatibilityDate: "2026-01-01",
  ssr: false,
  telemetry: false,
  devtools: { enabled: false },
  css: ["~/assets/panel.css"],
  app: {
    head: {
      htmlAttrs: { lang: "en" },
      title: "Orchestrator",
      meta: [
        { name: "viewport", content: "width=device-width, initial-scale=1" },
        { name: "color-scheme", content: "light dark" },
      ],
    },
  },
  vite: {
    // Workspace packages are compiled from source, so the panel builds
    // whatever order the workspaces are built in.
    resolve: { conditions: ["@orchestrator/source", "browser", "module", "import", "default"] },
    server: { proxy: { "/api": process.env.ORCH_BRAIN_URL ?? "http://127.0.0.1:8080" } },
  },
  nitro: { preset: "static" },
  typescript: {
    // `npm run typecheck` (vue-tsc) checks the app, templates included, as part
    // of the repo's `npm run check`; the build itself does not type-check.
    typeCheck: false,
    tsConfig: {
      vueCompilerOptions: {
        // A misspelt component, event or directive is an error, not a silent
        // no-op. (Unknown props stay allowed: they would flag every data-*.)
        checkUnknownComponents: true,
        checkUnknownEvents: true,
        checkUnknownDirectives: true,
      },
    },
  },
});
