/** What every view of the page is: an element to show and a refresh that fetches and redraws it. */

import type { CountHistory } from './count-history.js';
import type { Route } from './deep-link.js';

/** What a view may use from the page around it. */
export interface ViewContext {
  history: CountHistory;
  /** Changes the address to another route; `replace` keeps the back button on the previous view. */
  navigate(route: Route, replace?: boolean): void;
}

/** One view: built once per route, refreshed every few seconds. */
export interface View {
  element: HTMLElement;
  /** Title for the tab and the heading. */
  title: string;
  /** Applies a route of the same viewKey in place (filter, sort), without a request. */
  setRoute?(route: Route): void;
  /** Fetches and updates the view in place; throws ApiError to have it shown. */
  refresh(): Promise<void>;
}
