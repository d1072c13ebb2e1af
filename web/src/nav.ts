// The studio's pages, chosen by the URL's hash (#judge), so that each has an address to share.
import { useEffect, useState } from "react";

export type Page = "studio" | "judge";

export function pageOf(hash: string): Page {
  return hash === "#judge" ? "judge" : "studio";
}

export function usePage(): Page {
  const [page, setPage] = useState<Page>(() => pageOf(window.location.hash));
  useEffect(() => {
    const follow = () => setPage(pageOf(window.location.hash));
    window.addEventListener("hashchange", follow);
    return () => window.removeEventListener("hashchange", follow);
  }, []);
  return page;
}
