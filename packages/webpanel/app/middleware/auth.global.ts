// Every page but the login page needs a session; admin pages need an admin.
export default defineNuxtRouteMiddleware(async (to) => {
  const { me, checked, refresh, can } = useSession();
  if (!checked.value) await refresh();
  if (to.path === "/login") return me.value ? navigateTo("/") : undefined;
  if (!me.value) return navigateTo({ path: "/login", query: { next: to.fullPath } });
  useLiveEvents().open();
  if (to.meta.role === "admin" && !can("admin")) return navigateTo("/");
});
