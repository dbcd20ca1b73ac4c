// Keeps the dashboard live: the socket says "something changed", and the page
// fetches its live fragment again. Reconnects with backoff.
(function () {
  const box = document.getElementById("live");
  const state = document.getElementById("live-state");
  if (!box) return;
  let delay = 500, pending = false, again = false;

  function show(s, text) { state.dataset.state = s; state.textContent = text; }

  async function refresh() {
    if (pending) { again = true; return; }
    pending = true;
    try {
      const r = await fetch(box.dataset.url, {credentials: "same-origin"});
      if (r.ok) box.innerHTML = await r.text();
    } finally {
      pending = false;
      if (again) { again = false; refresh(); }
    }
  }

  function connect() {
    const proto = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(proto + "://" + location.host + "/ws/dashboard/");
    ws.onopen = function () { delay = 500; show("live", "live"); refresh(); };
    ws.onmessage = function () { refresh(); };
    ws.onclose = function () {
      show("offline", "reconnecting…");
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 10000);
    };
  }
  connect();
})();
