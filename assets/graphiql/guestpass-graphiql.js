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

  // GraphiQL keeps its tabs, its history and its favorites in localStorage. It leaves the headers out
  // of its tabs (shouldPersistHeaders below), but GraphiQL 4's history keeps the headers of every
  // query run, a bearer token included, for anyone who later reads the browser's storage. So its
  // storage is this one, which writes every value without any `headers`, as GraphiQL does for tabs
  // (a history entry chosen after a reload then leaves the headers editor empty: paste the token
  // again).
  function withoutHeaders(key, value) {
    if (/:headers$/.test(key)) {
      return '';
    }
    try {
      return JSON.stringify(JSON.parse(value), function (k, v) {
        return k === 'headers' ? null : v;
      });
    } catch (notJson) {
      return value;
    }
  }
  var storage = null; // no storage at all where the browser refuses it
  try {
    var local = window.localStorage;
    var ours = function (key) {
      return key.indexOf('graphiql:') === 0;
    };
    storage = {
      getItem: function (key) {
        return local.getItem(key);
      },
      setItem: function (key, value) {
        local.setItem(key, withoutHeaders(key, value));
      },
      removeItem: function (key) {
        local.removeItem(key);
      },
      clear: function () {
        Object.keys(local).filter(ours).forEach(function (key) {
          local.removeItem(key);
        });
      },
      get length() {
        return Object.keys(local).filter(ours).length;
      },
    };
  } catch (refused) {}

  // Subscriptions go over a WebSocket to the same /graphql (graphql-transport-ws, with the graphql-ws
  // client GraphiQL bundles); the Headers tab becomes connection_init's payload, so the pasted
  // `Authorization` signs the connection in as it does every query.
  var subscriptionUrl =
    (window.location.protocol === 'https:' ? 'wss://' : 'ws://') + window.location.host + '/graphql';

  ReactDOM.createRoot(document.getElementById('graphiql')).render(
    React.createElement(GraphiQL, {
      // Our own endpoint, relative: the page's CSP lets it talk to its own origin only (`'self'`
      // covers ws: and wss: to the same host).
      fetcher: GraphiQL.createFetcher({ url: '/graphql', subscriptionUrl: subscriptionUrl }),
      defaultQuery: defaultQuery,
      defaultHeaders: defaultHeaders,
      isHeadersEditorEnabled: true,
      defaultEditorToolsVisibility: 'headers',
      // Never kept: `false` also hides GraphiQL's setting that would keep them in localStorage.
      shouldPersistHeaders: false,
      storage: storage,
    }),
  );
})();
