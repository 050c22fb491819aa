/**
 * Where the built web view lives, for the builder that writes it and the
 * servers that serve it: one self-contained HTML file.
 */

/** The page's file name inside its directory. */
export const UI_PAGE_FILE = 'index.html';

/** The page's directory in the built package, next to the bundled CLI (dist/ui). */
export const UI_PAGE_DIR = 'ui';
