// Starts GraphiQL on /graphiql. It is a file of its own, not an inline script, so that the page's
// Content-Security-Policy can refuse every inline script: the page loads React, ReactDOM and
// GraphiQL (globals `React`, `ReactDOM`, `GraphiQL`) from our own origin first, then this.
(function () {
  'use strict';

  // GraphiQL's dialogs lock the page's scrolling with a <style> element (react-remove-scroll), which
  // carries the nonce found in this global; the page's CSP allows inline styles with that nonce only,
  // a new one for every response, given to this script's own element.
  window.__webpack_nonce__ = document.currentScript.nonce;

  // Pasting a token in place of the placeholder is all it takes to run the default query:
  // `guestpass serve --demo` (scripts/run) prints the demo admin's.
  var defaultHeaders = '{\n  "Authorization": "Bearer <paste a token>"\n}\n';
  var defaultQuery = [
    '# Paste an API token into the Headers tab',
    '# below, then run (Ctrl-Enter). `guestpass',
    '# serve --demo` prints the demo admin\'s.',
    '{',
    '  me { email }',
    '  organization { name }',
    '  sites { id name }',
    '}',
    '',
  ].join('\n');

  ReactDOM.createRoot(document.getElementById('graphiql')).render(
    React.createElement(GraphiQL, {
      // Our own endpoint, relative: the page's CSP lets it talk to its own origin only.
      fetcher: GraphiQL.createFetcher({ url: '/graphql' }),
      defaultQuery: defaultQuery,
      defaultHeaders: defaultHeaders,
      isHeadersEditorEnabled: true,
      defaultEditorToolsVisibility: 'headers',
      // Headers stay out of GraphiQL's saved tabs (`false` also hides its setting to keep them).
      shouldPersistHeaders: false,
    }),
  );
})();
