/*
 * app.js - the admin panel's script: the views of index.html (mail log, a message, a test
 * letter, Configuration -> System -> General -> Mail (SMTP), API keys, the sandbox inbox,
 * the admin password), the dashboard header, and the JSON calls to /panel/api/.
 *
 * Rules it keeps:
 *  - Every value from the server goes into the page as text (textContent, createElement,
 *    attributes), never as HTML: a subject "<script>" shows as those characters.
 *    tools/embed.py refuses the build if this file uses HTML-from-strings APIs.
 *  - Every call that changes something sends the session's CSRF token (X-CSRF-Token),
 *    which it reads once from GET /panel/api/session. A 401 means the session ended: the
 *    page goes to /login.
 *  - A field at fault gets aria-invalid="true" and its reason and fix in the <p class=err>
 *    under it, linked with aria-describedby; all of them at once, with a summary (role=alert)
 *    whose links move the focus to each field. The entered values stay.
 * Routes are the address's #fragment: #/log[?state=&q=], #/message/ID, #/test/ID,
 * #/config[/NAME|/new], #/keys, #/sandbox[/ID], #/password.
 */
"use strict";

(function () {
  var csrf = null;
  var providers = [];          /* GET providers, once */
  var providerById = {};
  var accounts = [];           /* GET accounts */
  var current = null;          /* the account in the form, or null for a new one */
  var logPages = [];           /* cursors of the pages before the one shown */
  var logCursor = null;        /* the cursor of the page shown (null: newest) */
  var logNext = null;          /* the cursor of the next older page */
  var logQuery = "";
  var FIELDS = ["name", "provider", "email", "username", "password", "sender", "sender_name",
                "host", "port", "security"];
  var STEP_LABELS = { dns: "DNS", connect: "Connect", tls: "TLS", greeting: "Greeting",
                      login: "Login", sender: "Sender", send: "Send" };
  var STATE_LABELS = { queued: "Queued", sending: "Sending", sent: "Sent", deferred: "Deferred",
                       failed: "Failed", uncertain: "Uncertain" };

  /* ---- small helpers ------------------------------------------------------------------- */

  function $(id) { return document.getElementById(id); }

  /* el("a", {href: "#/x", className: "y", text: "z"}, [children]) */
  function el(tag, props, children) {
    var node = document.createElement(tag);
    var k;
    props = props || {};
    for (k in props) {
      if (!Object.prototype.hasOwnProperty.call(props, k)) continue;
      if (k === "text") node.textContent = props[k];
      else if (k === "className") node.className = props[k];
      else if (k.indexOf("data-") === 0 || k.indexOf("aria-") === 0 || k === "role" ||
               k === "scope" || k === "colspan")
        node.setAttribute(k, props[k]);
      else node[k] = props[k];
    }
    (children || []).forEach(function (c) {
      if (c === null || c === undefined) return;
      node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function fmtTime(unix) {
    if (!unix) return "";
    var d = new Date(unix * 1000);
    return d.toLocaleString(undefined, { year: "numeric", month: "short", day: "numeric",
                                         hour: "2-digit", minute: "2-digit", second: "2-digit" });
  }

  function fmtSize(n) {
    if (n === null || n === undefined) return "";
    if (n < 1024) return n + " bytes";
    if (n < 1024 * 1024) return (n / 1024).toFixed(1) + " KB";
    return (n / 1024 / 1024).toFixed(1) + " MB";
  }

  function capital(s) {
    s = String(s || "");
    return s.charAt(0).toUpperCase() + s.slice(1);
  }

  function firstError(data, status) {
    if (data && data.errors && data.errors.length) return capital(data.errors[0].message);
    return "The server answered " + status + ".";
  }

  /* A server reply with its code in front, once ("250 2.0.0 OK", not "250 250 2.0.0 OK"). */
  function replyText(code, reply) {
    reply = reply || "";
    if (!code || reply.indexOf(String(code)) === 0) return reply;
    return code + " " + reply;
  }

  function flash(text, kind) {
    var box = $("flash");
    flash.at = Date.now();
    box.className = "flash alert " + (kind || "ok");
    box.textContent = text;
    box.hidden = false;
    clearTimeout(flash.timer);
    flash.timer = setTimeout(function () { box.hidden = true; }, kind === "error" ? 12000 : 6000);
  }

  /* One call to /panel/api/PATH. Resolves {status, data}; a 401 leaves for /login. */
  function api(method, path, body) {
    var headers = { "Accept": "application/json" };
    var opts = { method: method, credentials: "same-origin", headers: headers };
    if (method !== "GET") {
      headers["X-CSRF-Token"] = csrf || "";
      if (body !== undefined) {
        headers["Content-Type"] = "application/json";
        opts.body = JSON.stringify(body);
      }
    }
    return fetch("/panel/api/" + path, opts).then(function (resp) {
      if (resp.status === 401) {
        window.location.assign("/login");
        return new Promise(function () {});
      }
      return resp.json().catch(function () { return null; }).then(function (data) {
        return { status: resp.status, data: data };
      });
    }, function () {
      flash("The server cannot be reached. Is mailout serve still running?", "error");
      return { status: 0, data: null };
    });
  }

  /* ---- the router --------------------------------------------------------------------- */

  function parseHash() {
    var h = window.location.hash || "#/log";
    var q = h.indexOf("?");
    var path = (q >= 0 ? h.slice(2, q) : h.slice(2)).split("/").map(decodeURIComponent);
    var params = new URLSearchParams(q >= 0 ? h.slice(q + 1) : "");
    return { path: path, params: params };
  }

  function showView(name, nav) {
    ["log", "message", "config", "keys", "sandbox", "password"].forEach(function (v) {
      $("view-" + v).hidden = v !== name;
    });
    Array.prototype.forEach.call(document.querySelectorAll(".mainnav a"), function (a) {
      if (a.getAttribute("data-nav") === nav) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    });
  }

  var firstRoute = true;

  function route() {
    var r = parseHash();
    /* a message from the view left behind goes; one set for the new view (just now) stays */
    if (!$("flash").hidden && Date.now() - (flash.at || 0) > 1500) $("flash").hidden = true;
    var head = r.path[0] || "log";
    if (head === "message" || head === "test") {
      showView("message", "log");
      loadMessage(head, r.path[1]);
    } else if (head === "config") {
      showView("config", "config");
      loadConfig(r.path[1] || "");
    } else if (head === "keys") {
      showView("keys", "keys");
      loadKeys();
    } else if (head === "sandbox") {
      showView("sandbox", "sandbox");
      loadSandbox(r.path[1] || "");
    } else if (head === "password") {
      showView("password", "password");
      resetPasswordForm();
    } else {
      showView("log", "log");
      loadLog(r.params);
    }
    loadDashboard();
    /* after a click, move the focus to the new view for keyboard and screen reader users */
    if (!firstRoute) $("main").focus();
    firstRoute = false;
  }

  /* ---- the dashboard ------------------------------------------------------------------- */

  function loadDashboard() {
    api("GET", "dashboard").then(function (r) {
      if (r.status !== 200) return;
      var c = r.data.counts;
      $("d-sent").textContent = r.data.sent_today;
      $("d-queued").textContent = c.queued + c.sending;
      $("d-deferred").textContent = c.deferred;
      $("d-failed").textContent = c.failed + c.uncertain;
      $("d-failed").parentNode.classList.toggle("bad", c.failed + c.uncertain > 0);
      var box = $("d-paused");
      clear(box);
      r.data.paused.forEach(function (p) {
        var button = el("button", { type: "button", className: "small", text: "Check it again" });
        var line = el("div", { className: "alert note", role: "group",
                               "aria-label": "Paused account " + p.account }, [
          el("strong", { text: "Account \u201c" + p.account + "\u201d is paused" }),
          " until " + fmtTime(p.until) + ": its mail waits in the queue. Why: ",
          el("span", { text: p.reason || "the server refused it" }), " ",
          button, " ",
          el("a", { href: "#/config/" + encodeURIComponent(p.account), text: "Edit its settings" })
        ]);
        button.addEventListener("click", function () {
          button.disabled = true;
          button.textContent = "Checking\u2026";
          runCheckJob(p.account, false, {}, null).then(function (res) {
            button.disabled = false;
            button.textContent = "Check it again";
            if (res.status === 200 && res.data.ok) {
              flash("Account \u201c" + p.account + "\u201d works again" +
                    (res.data.resumed ? ": delivery goes on." : "."));
              loadDashboard();
            } else if (res.status === 200) {
              flash("Still failing: " + res.data.diagnosis.title + ". " + res.data.diagnosis.fix,
                    "error");
            } else {
              flash(firstError(res.data, res.status), "error");
            }
          });
        });
        box.appendChild(line);
      });
    });
  }

  /* ---- the mail log ---------------------------------------------------------------------- */

  function stateBadge(state) {
    return el("span", { className: "state " + state, text: STATE_LABELS[state] || state });
  }

  function logRow(m) {
    var href = (m.kind === "test" ? "#/test/" : "#/message/") + m.id;
    var to = m.to || [];
    var toCell = el("td", { "data-label": "To" }, [to[0] || ""]);
    if (to.length > 1) toCell.appendChild(el("span", { className: "more", text: " +" + (to.length - 1) + " more" }));
    var subject = el("td", { className: "subject", "data-label": "Subject" }, [
      el("a", { href: href, text: m.subject ? m.subject : "(no subject)" })
    ]);
    if (m.kind === "test") subject.appendChild(el("span", { className: "more", text: " test letter" }));
    return el("tr", {}, [
      el("td", { "data-label": "Time", text: fmtTime(m.created_at) }),
      el("td", { "data-label": "From", text: m.from || "" }),
      toCell,
      subject,
      el("td", { "data-label": "State" }, [stateBadge(m.state)])
    ]);
  }

  function loadLog(params) {
    var state = params.get("state") || "";
    var q = params.get("q") || "";
    var query = "state=" + encodeURIComponent(state) + "&q=" + encodeURIComponent(q);
    if (query !== logQuery) {
      logQuery = query;
      logPages = [];
      logCursor = null;
    }
    $("log-state").value = state;
    $("log-q").value = q;
    fetchLogPage();
  }

  function fetchLogPage() {
    var path = "messages?" + logQuery;
    if (logCursor) path += "&before=" + logCursor.before + "&before_t=" + logCursor.before_t;
    api("GET", path).then(function (r) {
      var body = $("log-body");
      clear(body);
      if (r.status !== 200) {
        flash(firstError(r.data, r.status), "error");
        return;
      }
      r.data.messages.forEach(function (m) { body.appendChild(logRow(m)); });
      $("log-empty").hidden = r.data.messages.length > 0;
      logNext = r.data.next;
      $("log-older").disabled = !logNext;
      $("log-newer").disabled = logPages.length === 0;
    });
  }

  $("log-filter").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var p = new URLSearchParams();
    if ($("log-state").value) p.set("state", $("log-state").value);
    if ($("log-q").value.trim()) p.set("q", $("log-q").value.trim());
    var h = "#/log" + (p.toString() ? "?" + p.toString() : "");
    if (window.location.hash === h) fetchLogPage();
    else window.location.hash = h;
  });
  $("log-older").addEventListener("click", function () {
    if (!logNext) return;
    logPages.push(logCursor);
    logCursor = logNext;
    fetchLogPage();
  });
  $("log-newer").addEventListener("click", function () {
    if (!logPages.length) return;
    logCursor = logPages.pop();
    fetchLogPage();
  });

  /* ---- a message and a test letter ------------------------------------------------------- */

  function facts(rows) {
    var dl = el("dl", { className: "facts" });
    rows.forEach(function (r) {
      if (r[1] === null || r[1] === undefined || r[1] === "") return;
      dl.appendChild(el("dt", { text: r[0] }));
      dl.appendChild(el("dd", {}, [typeof r[1] === "object" ? r[1] : String(r[1])]));
    });
    return dl;
  }

  function section(title, children) {
    return el("div", { className: "card" }, [el("h2", { text: title })].concat(children));
  }

  function messageActions(m) {
    var box = el("div", { className: "actions" });
    function action(label, method, path, confirmText, cls, done) {
      var b = el("button", { type: "button", text: label, className: cls || "" });
      b.addEventListener("click", function () {
        if (confirmText && !window.confirm(confirmText)) return;
        b.disabled = true;
        api(method, path, method === "DELETE" ? undefined : {}).then(function (r) {
          b.disabled = false;
          if (r.status >= 200 && r.status < 300) done(r.data);
          else flash(firstError(r.data, r.status), "error");
        });
      });
      box.appendChild(b);
    }
    if (m.can_retry)
      action("Retry now", "POST", "messages/" + m.id + "/retry", null, "primary", function () {
        flash("Message " + m.id + " is queued again and will be sent shortly.");
        loadMessage("message", String(m.id));
        loadDashboard();
      });
    if (m.can_resend)
      action("Resend a copy", "POST", "messages/" + m.id + "/resend",
             "Queue a copy of this message (with a new Message-ID) for every recipient?", "",
             function (d) {
               flash("A copy was queued as message " + d.id + ".");
               window.location.hash = "#/message/" + d.id;
             });
    if (m.can_drop)
      action("Drop", "DELETE", "messages/" + m.id,
             "Drop this message from the queue and the log? This cannot be undone.", "danger",
             function () {
               flash("Message " + m.id + " was dropped.");
               window.location.hash = "#/log";
             });
    return box;
  }

  function renderMessage(m, content) {
    var body = $("msg-body");
    clear(body);
    $("msg-h").textContent = m.subject ? m.subject : "(no subject)";
    var rcpts = el("ul", {}, (m.recipients || []).map(function (r) {
      return el("li", {}, [r.address + " ", el("span", { className: "state " +
        (r.state === "delivered" ? "sent" : r.state === "failed" ? "failed" : "queued"),
        text: r.state }), r.reply ? el("span", { className: "more", text: " " + replyText(r.code, r.reply) }) : null]);
    }));
    body.appendChild(el("div", { className: "card" }, [
      facts([["State", stateBadge(m.state)], ["From", m.from], ["Envelope sender", m.envelope_from],
             ["Recipients", rcpts], ["Account", m.account || "default"],
             ["Queued", fmtTime(m.created_at)], ["Last change", fmtTime(m.updated_at)],
             ["Next attempt", m.state === "deferred" ? fmtTime(m.next_attempt_at) : ""],
             ["Attempts", m.attempts], ["Last reply", m.last_reply ? replyText(m.last_code, m.last_reply) : ""],
             ["Message-ID", m.message_id], ["Size", fmtSize(m.size)], ["Came from", m.source]]),
      messageActions(m)
    ]));
    if (content) {
      var pv = content.preview;
      var parts = [];
      if (pv) {
        if (pv.type === "text/html")
          parts.push(el("p", { className: "hint", text: "The message has no plain-text part; its HTML is shown as source." }));
        parts.push(el("pre", { className: "body", text: pv.text }));
        if (pv.truncated) parts.push(el("p", { className: "hint", text: "Only the beginning is shown." }));
      } else {
        parts.push(el("p", { className: "empty", text: "No text to show." }));
      }
      body.appendChild(section("Body preview", parts));
      body.appendChild(section("Attachments", content.attachments.length ? [
        el("ul", {}, content.attachments.map(function (a) {
          return el("li", {}, [el("strong", { text: a.filename || "(no name)" }),
                              " " + a.content_type + ", " + fmtSize(a.size)]);
        }))] : [el("p", { className: "empty", text: "None." })]));
      var table = el("table", {}, [el("caption", { className: "sr", text: "Header fields" }),
        el("tbody", {}, content.headers.map(function (h) {
          return el("tr", {}, [el("th", { scope: "row", text: h.name }), el("td", { className: "mono", text: h.value })]);
        }))]);
      body.appendChild(section("Header fields", [el("details", {}, [
        el("summary", { text: "Show all " + content.headers.length + " header fields" }), table])]));
    }
    var attempts = (m.attempt_log || []).map(function (a, i) {
      var kids = [el("h3", {}, ["Attempt " + (i + 1) + ": ", stateBadge(a.result), " " + fmtTime(a.at)])];
      if (a.reply) kids.push(el("p", { className: "mono", text: replyText(a.code, a.reply) }));
      if (a.transcript)
        kids.push(el("details", {}, [el("summary", { text: "Show the conversation with the server" }),
                                      el("pre", { text: a.transcript })]));
      return el("div", { className: "attempt" }, kids);
    });
    body.appendChild(section("Attempts", attempts.length ? attempts :
      [el("p", { className: "empty", text: "Not tried yet." })]));
  }

  function renderTest(t) {
    var body = $("msg-body");
    var o = t.outcome || {};
    clear(body);
    $("msg-h").textContent = t.subject || "Test letter";
    var kids = [facts([["Result", stateBadge(t.state)], ["Kind", "Test letter sent from the panel"],
                       ["Account", t.account], ["From", t.from], ["To", (t.to || [])[0]],
                       ["Sent", fmtTime(t.created_at)], ["Message-ID", t.message_id]])];
    kids.push(stepsList(o.steps || []));
    if (o.diagnosis) kids.push(diagnosisBox(o.diagnosis, o.error));
    body.appendChild(el("div", { className: "card" }, kids));
    if (t.transcript && t.transcript.length)
      body.appendChild(section("Conversation with the server", [
        el("details", {}, [el("summary", { text: "Show it (passwords hidden)" }),
                           el("pre", { text: t.transcript.join("\n") })])]));
  }

  function loadMessage(kind, id) {
    clear($("msg-body"));
    $("msg-h").textContent = "Loading\u2026";
    api("GET", (kind === "test" ? "tests/" : "messages/") + encodeURIComponent(id)).then(function (r) {
      if (r.status !== 200) {
        $("msg-h").textContent = "Not found";
        $("msg-body").appendChild(el("p", { text: firstError(r.data, r.status) }));
        return;
      }
      if (kind === "test") renderTest(r.data.test);
      else renderMessage(r.data.message, r.data.content);
    });
  }

  /* ---- configuration: accounts ------------------------------------------------------------ */

  function loadProviders() {
    if (providers.length) return Promise.resolve();
    return api("GET", "providers").then(function (r) {
      if (r.status !== 200) return;
      providers = r.data.providers.slice().sort(function (a, b) {
        return a.name.localeCompare(b.name);
      });
      providers.forEach(function (p) { providerById[p.id] = p; });
      fillProviderOptions("");
    });
  }

  function fillProviderOptions(filter) {
    var select = $("f-provider");
    var keep = select.value || (current ? current.provider : "custom");
    var f = filter.trim().toLowerCase();
    clear(select);
    select.appendChild(el("option", { value: "custom", text: "Other (own server)" }));
    providers.forEach(function (p) {
      var hay = (p.name + " " + p.id + " " + (p.domains || []).join(" ")).toLowerCase();
      if (f && hay.indexOf(f) < 0 && p.id !== keep) return;
      select.appendChild(el("option", { value: p.id, text: p.name }));
    });
    select.value = providerById[keep] || keep === "custom" ? keep : "custom";
  }

  function showProviderHelp(p) {
    var box = $("provider-help");
    if (!p) { box.hidden = true; return; }
    $("ph-title").textContent = p.name + ": " + (p.host || "") +
      (p.port_starttls ? ", port " + p.port_starttls + " with STARTTLS" :
       p.port_tls ? ", port " + p.port_tls + " with SSL/TLS" : "");
    var steps = $("ph-steps");
    clear(steps);
    if (p.oauth_only) {
      steps.appendChild(el("li", { text: p.name + " no longer accepts passwords from mail programs: it needs an OAuth2 token (set it on the server with mailout account set --auth xoauth2)." }));
    } else if (p.app_password !== "no") {
      steps.appendChild(el("li", { text: p.name + " wants an app password, not your normal password." +
        (p.app_password === "when_2fa" ? " (Only once two-step login is on.)" : "") }));
      steps.appendChild(el("li", { text: "Turn on 2-Step Verification (two-factor sign-in) for the account." }));
      var li = el("li", {}, ["Open "]);
      if (p.app_password_url) li.appendChild(el("a", { href: p.app_password_url, target: "_blank", rel: "noopener noreferrer", text: p.app_password_url }));
      else li.appendChild(document.createTextNode("your account's security page"));
      li.appendChild(document.createTextNode(", create an app password named after your shop, and copy it."));
      steps.appendChild(li);
      steps.appendChild(el("li", { text: "Paste it into Password below (spaces are fine: mailout removes them)." }));
    } else {
      steps.appendChild(el("li", { text: "Use the account's normal password." }));
    }
    if (p.dots_ignored)
      steps.appendChild(el("li", { text: "Dots in the address do not matter to " + p.name + ": test.shop@\u2026 and testshop@\u2026 are the same mailbox, and both work here." }));
    $("ph-notes").textContent = "";
    var links = $("ph-links");
    clear(links);
    if (p.help_url) links.appendChild(el("a", { href: p.help_url, target: "_blank", rel: "noopener noreferrer", text: p.name + "'s own help on SMTP settings" }));
    box.hidden = false;
  }

  function applyProvider(p) {
    if (!p) return;
    if (p.host) $("f-host").value = p.host;
    if (p.port_starttls) {
      $("f-port").value = p.port_starttls;
      $("f-security").value = "starttls";
    } else if (p.port_tls) {
      $("f-port").value = p.port_tls;
      $("f-security").value = "tls";
    }
    if (p.fixed_username) $("f-username").value = p.fixed_username;
  }

  $("f-provider").addEventListener("change", function () {
    var p = providerById[$("f-provider").value];
    applyProvider(p);
    showProviderHelp(p);
  });
  $("f-provider-search").addEventListener("input", function () {
    fillProviderOptions($("f-provider-search").value);
  });
  $("btn-detect").addEventListener("click", function () {
    clearErrors();
    var b = $("btn-detect");
    b.disabled = true;
    b.textContent = "Detecting\u2026";
    api("POST", "detect", { email: $("f-email").value }).then(function (r) {
      b.disabled = false;
      b.textContent = "Detect from email";
      if (r.status !== 200) {
        showErrors(r.data && r.data.errors ? r.data.errors : [{ field: null, message: firstError(r.data, r.status) }]);
        return;
      }
      var d = r.data;
      if (d.provider && providerById[d.provider]) {
        $("f-provider-search").value = "";
        fillProviderOptions("");
        $("f-provider").value = d.provider;
        applyProvider(providerById[d.provider]);
        showProviderHelp(providerById[d.provider]);
      } else if (d.host) {
        $("f-provider").value = "custom";
        $("f-host").value = d.host;
        $("f-port").value = d.port;
        $("f-security").value = d.security;
        showProviderHelp(null);
      }
      flash(d.source === "none" ? "No mail service was found for this address: " + d.explanation +
            ". Choose one, or fill in the server." : "Found: " + d.explanation + ".", d.source === "none" ? "note" : "ok");
    });
  });

  function accountRow(a) {
    var status;
    if (a.paused) status = el("span", { className: "state deferred", text: "Paused" });
    else if (a.last_check) status = el("span", { className: "state " + (a.last_check.ok ? "sent" : "failed"),
      text: a.last_check.ok ? "Last check passed" : "Last check failed" });
    else status = el("span", { className: "state", text: "Not checked yet" });
    var remove = el("button", { type: "button", className: "small danger", text: "Remove" });
    remove.setAttribute("aria-label", "Remove account " + a.name);
    remove.addEventListener("click", function () {
      if (!window.confirm("Remove the account \u201c" + a.name + "\u201d? Mail that names it can then not be sent.")) return;
      api("DELETE", "accounts/" + encodeURIComponent(a.name)).then(function (r) {
        if (r.status !== 200) { flash(firstError(r.data, r.status), "error"); return; }
        flash("The account \u201c" + a.name + "\u201d was removed.");
        if (current && current.name === a.name) window.location.hash = "#/config/new";
        else loadConfig(current ? current.name : "new");
      });
    });
    var edit = el("a", { href: "#/config/" + encodeURIComponent(a.name), className: "button small", text: "Edit" });
    edit.setAttribute("aria-label", "Edit account " + a.name);
    return el("tr", {}, [
      el("td", { "data-label": "Name" }, [a.name + " ", a.is_default ? el("span", { className: "badge", text: "default" }) : null]),
      el("td", { "data-label": "Email", text: a.email }),
      el("td", { "data-label": "Mail service", text: a.provider_name || "Other (own server)" }),
      el("td", { "data-label": "Status" }, [status]),
      el("td", {}, [el("div", { className: "row-actions" }, [edit, remove])])
    ]);
  }

  function loadConfig(name) {
    loadProviders().then(function () {
      return api("GET", "accounts");
    }).then(function (r) {
      if (!r || r.status !== 200) return;
      accounts = r.data.accounts;
      var body = $("acc-body");
      clear(body);
      accounts.forEach(function (a) { body.appendChild(accountRow(a)); });
      $("acc-empty").hidden = accounts.length > 0;
      var pick = null;
      if (name && name !== "new") {
        pick = accounts.filter(function (a) { return a.name === name; })[0] || null;
        if (!pick) flash("There is no account \u201c" + name + "\u201d.", "error");
      } else if (!name && accounts.length) {
        pick = accounts[0];
      }
      fillForm(pick);
    });
  }

  /* The accounts table again (after a save or a check), the form untouched. */
  function refreshAccounts() {
    api("GET", "accounts").then(function (res) {
      if (res.status !== 200) return;
      accounts = res.data.accounts;
      var body = $("acc-body");
      clear(body);
      accounts.forEach(function (a) { body.appendChild(accountRow(a)); });
      $("acc-empty").hidden = accounts.length > 0;
    });
  }

  function fillForm(a) {
    current = a;
    clearErrors();
    $("check-result").hidden = true;
    $("form-notes").hidden = true;
    $("form-title").textContent = a ? "Account \u201c" + a.name + "\u201d" : "Add account";
    $("f-name").value = a ? a.name : (accounts.some(function (x) { return x.is_default; }) ? "" : "default");
    $("f-name").readOnly = !!a;
    $("f-provider-search").value = "";
    fillProviderOptions("");
    $("f-provider").value = a ? a.provider : "custom";
    if (!$("f-provider").value) $("f-provider").value = "custom";
    ["email", "username", "sender", "sender_name", "host"].forEach(function (f) {
      $("f-" + f).value = a && a[f] ? a[f] : "";
    });
    $("f-port").value = a && a.port ? a.port : "";
    $("f-security").value = a ? a.security : "starttls";
    $("f-password").value = "";
    setPasswordSaved(a && a.password_set);
    $("f-test-to").value = "";
    showProviderHelp(a ? providerById[a.provider] : null);
    var extra = [];
    if (a && a.ca_file) extra.push("CA file: " + a.ca_file);
    if (a && a.auth && a.auth !== "auto") extra.push("Login method: " + a.auth);
    if (a && a.timeout) extra.push("Timeout: " + a.timeout + " s");
    $("stored-extra").textContent = extra.length ? "Set from the command line and kept: " + extra.join("; ") + "." : "";
    $("stored-extra").hidden = !extra.length;
  }

  function setPasswordSaved(saved) {
    var pw = $("f-password");
    pw.placeholder = saved ? "\u2022\u2022\u2022\u2022\u2022\u2022\u2022\u2022 (saved)" : "";
    $("h-password").textContent = saved
      ? "A password is saved (it is never shown). Leave this empty to keep it, or type a new one. Any characters work, digits only too."
      : "Any characters work, digits only too.";
  }

  function formValues() {
    return {
      provider: $("f-provider").value,
      email: $("f-email").value,
      username: $("f-username").value,
      password: $("f-password").value,
      sender: $("f-sender").value,
      sender_name: $("f-sender_name").value,
      host: $("f-host").value,
      port: $("f-port").value.trim(),
      security: $("f-security").value
    };
  }

  function accountName() {
    return current ? current.name : $("f-name").value.trim();
  }

  /* ---- field errors ---------------------------------------------------------------------- */

  function fieldLabel(field) {
    var l = document.querySelector("label[for='f-" + field + "']");
    return l ? l.textContent : field;
  }

  /* Takes a field's red mark and reason away (and the reason out of its description). */
  function clearFieldError(input, err) {
    input.removeAttribute("aria-invalid");
    err.hidden = true;
    clear(err);
    var d = (input.getAttribute("aria-describedby") || "").split(/\s+/).filter(function (x) {
      return x && x !== err.id;
    });
    if (d.length) input.setAttribute("aria-describedby", d.join(" "));
    else input.removeAttribute("aria-describedby");
  }

  function clearErrors() {
    FIELDS.forEach(function (f) {
      var input = $("f-" + f);
      var err = $("e-" + f);
      if (!input || !err) return;
      clearFieldError(input, err);
    });
    $("form-summary").hidden = true;
    clear($("form-summary"));
  }

  /* Marks field red with its reason (a title in bold when given, then what happened) and
   * the fix; false when the form has no such field. */
  function setFieldError(field, reason, fix, title) {
    var input = $("f-" + field);
    var err = $("e-" + field);
    if (!input || !err || FIELDS.indexOf(field) < 0) return false;
    input.setAttribute("aria-invalid", "true");
    if (err.hidden) clear(err);
    else err.appendChild(document.createTextNode("\n"));
    if (title) err.appendChild(el("strong", { text: title + ". " }));
    err.appendChild(document.createTextNode(capital(reason)));
    if (fix) err.appendChild(el("span", { className: "fix", text: "What to do: " + fix }));
    err.hidden = false;
    var d = (input.getAttribute("aria-describedby") || "").split(/\s+/).filter(Boolean);
    if (d.indexOf(err.id) < 0) d.unshift(err.id);
    input.setAttribute("aria-describedby", d.join(" "));
    return true;
  }

  /* errors: [{field, message}]; every one at once, with a summary that links to each field. */
  function showErrors(errors) {
    clearErrors();
    var summary = $("form-summary");
    var list = el("ul");
    errors.forEach(function (e) {
      var marked = e.field && setFieldError(e.field, e.message);
      var item = el("li");
      if (marked) {
        var link = el("a", { href: "#f-" + e.field, text: fieldLabel(e.field) });
        link.addEventListener("click", function (ev) {
          ev.preventDefault();
          $("f-" + e.field).focus();
        });
        item.appendChild(link);
        item.appendChild(document.createTextNode(": " + e.message));
      } else {
        item.appendChild(document.createTextNode((e.field ? fieldLabel(e.field) + ": " : "") + capital(e.message)));
      }
      list.appendChild(item);
    });
    summary.appendChild(el("p", { text: errors.length === 1 ? "One thing to fix:" : errors.length + " things to fix:" }));
    summary.appendChild(list);
    summary.hidden = false;
    summary.focus();
  }

  function showNotes(notes) {
    var box = $("form-notes");
    clear(box);
    if (!notes || !notes.length) { box.hidden = true; return; }
    box.appendChild(el("ul", {}, notes.map(function (n) {
      return el("li", { text: (n.field ? fieldLabel(n.field) + ": " : "") + capital(n.message) });
    })));
    box.hidden = false;
  }

  /* ---- save, check, test --------------------------------------------------------------- */

  function busy(on) {
    ["btn-save", "btn-test", "btn-check"].forEach(function (id) { $(id).disabled = on; });
  }

  $("acc-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var name = accountName();
    clearErrors();
    if (!name) { showErrors([{ field: "name", message: "give the account a name, e.g. \u201cdefault\u201d" }]); return; }
    busy(true);
    api("PUT", "accounts/" + encodeURIComponent(name), formValues()).then(function (r) {
      busy(false);
      if (r.status === 200 || r.status === 201) {
        flash("Saved. Press \u201cSend test email\u201d to check it end to end.");
        showNotes(r.data.notes);
        $("f-password").value = "";
        var saved = r.data.account;
        current = saved;
        $("f-name").readOnly = true;
        $("form-title").textContent = "Account \u201c" + saved.name + "\u201d";
        setPasswordSaved(saved.password_set);
        if (saved.username) $("f-username").value = saved.username;
        if (saved.host) $("f-host").value = saved.host;
        if (saved.port) $("f-port").value = saved.port;
        $("f-security").value = saved.security;
        if (window.location.hash !== "#/config/" + encodeURIComponent(saved.name))
          history.replaceState(null, "", "#/config/" + encodeURIComponent(saved.name));
        refreshAccounts();
        return;
      }
      showNotes(r.data && r.data.notes);
      showErrors(r.data && r.data.errors ? r.data.errors : [{ field: null, message: firstError(r.data, r.status) }]);
    });
  });

  function stepsList(steps) {
    var ol = el("ol", { className: "steps", "aria-label": "Steps" });
    steps.forEach(function (s) {
      ol.appendChild(el("li", { className: s.ok ? "ok" : "bad" }, [
        (STEP_LABELS[s.name] || capital(s.name)) + " " + (s.ok ? "\u2713" : "\u2717") + " ",
        el("span", { className: "ms", text: s.ms + " ms" }),
        el("span", { className: "sr", text: s.ok ? " passed" : " failed" })
      ]));
    });
    return ol;
  }

  function diagnosisBox(d, e) {
    var kids = [el("h3", { text: d.title })];
    var dl = el("dl");
    if (d.field) { dl.appendChild(el("dt", { text: "Field at fault" })); dl.appendChild(el("dd", { text: fieldLabel(d.field) })); }
    dl.appendChild(el("dt", { text: "What happened" }));
    dl.appendChild(el("dd", { text: d.explanation }));
    dl.appendChild(el("dt", { text: "What to do" }));
    dl.appendChild(el("dd", { text: d.fix }));
    if (d.help_url) {
      dl.appendChild(el("dt", { text: "Help" }));
      dl.appendChild(el("dd", {}, [el("a", { href: d.help_url, target: "_blank", rel: "noopener noreferrer", text: d.help_url })]));
    }
    if (e && e.text) {
      dl.appendChild(el("dt", { text: "The server said" }));
      dl.appendChild(el("dd", { className: "mono", text: e.text }));
    }
    kids.push(dl);
    return el("div", { className: "alert error diag", role: "alert" }, kids);
  }

  /*
   * Starts a check or a test letter (202 {check_id}) and polls checks/ID every 150 ms,
   * handing the steps so far to onSteps (may be null). Resolves like api(): {status: 200,
   * data: the result} when done, or the failed answer (400 with the form's errors, ...).
   */
  function runCheckJob(name, sendTest, body, onSteps) {
    var path = "accounts/" + encodeURIComponent(name) + (sendTest ? "/test" : "/check");
    return api("POST", path, body).then(function (r) {
      if (r.status !== 202 || !r.data || !r.data.check_id) return r;
      var id = r.data.check_id;
      var shown = -1;
      return new Promise(function (resolve) {
        function poll() {
          api("GET", "checks/" + encodeURIComponent(id)).then(function (g) {
            if (g.status !== 200 || !g.data) { resolve(g); return; }
            var sofar = g.data.steps || [];
            if (onSteps && sofar.length !== shown && !g.data.done) { shown = sofar.length; onSteps(sofar); }
            if (g.data.done) { resolve({ status: g.data.result ? 200 : 500, data: g.data.result }); return; }
            setTimeout(poll, 150);
          });
        }
        poll();
      });
    });
  }

  function runCheck(sendTest) {
    var name = accountName();
    clearErrors();
    $("form-notes").hidden = true;
    if (!name) { showErrors([{ field: "name", message: "give the account a name, e.g. \u201cdefault\u201d" }]); return; }
    var body = formValues();
    if (sendTest && $("f-test-to").value.trim()) body.to = $("f-test-to").value.trim();
    var result = $("check-result");
    var steps = $("steps");
    var outcome = $("outcome");
    clear(steps);
    clear(outcome);
    $("transcript-box").hidden = true;
    $("transcript-box").open = false;
    result.hidden = false;
    var started = Date.now();
    var running = el("li", { className: "run", text: (sendTest ? "Sending the test email" : "Checking the connection") + "\u2026" });
    steps.appendChild(running);
    var tick = setInterval(function () {
      running.textContent = (sendTest ? "Sending the test email" : "Checking the connection") +
        "\u2026 " + Math.round((Date.now() - started) / 1000) + " s";
    }, 1000);
    busy(true);
    runCheckJob(name, sendTest, body, function (sofar) {
      /* the steps that passed so far, then the one running (with its counter) */
      clear(steps);
      stepsList(sofar).childNodes.forEach(function (li) { steps.appendChild(li.cloneNode(true)); });
      steps.appendChild(running);
    }).then(function (r) {
      clearInterval(tick);
      busy(false);
      clear(steps);
      if (r.status === 400 && r.data && r.data.errors) {
        result.hidden = true;
        showNotes(r.data.notes);
        showErrors(r.data.errors);
        return;
      }
      if (r.status !== 200) {
        outcome.appendChild(el("p", { className: "alert error", text: firstError(r.data, r.status) }));
        return;
      }
      var d = r.data;
      stepsList(d.steps).childNodes.forEach(function (li) { steps.appendChild(li.cloneNode(true)); });
      if (d.ok) {
        outcome.appendChild(el("p", { className: "alert ok outcome-ok", role: "status",
          text: sendTest ? "Sent \u2014 check your inbox (" + d.to + ") for the confirmation letter."
                         : "The connection works: the server accepted the login and the sender. Nothing was sent." }));
        if (!d.saved_settings)
          outcome.appendChild(el("p", { className: "hint", text: "These settings are not saved yet: press Save to keep them." }));
        if (d.resumed) outcome.appendChild(el("p", { className: "hint", text: "The account was paused; delivery goes on now." }));
      } else {
        var dg = d.diagnosis;
        /* a setting the form does not show (CA file, login method) has only the box below */
        if (dg.field) setFieldError(dg.field, dg.explanation, dg.fix, dg.title);
        outcome.appendChild(diagnosisBox(dg, d.error));
        if (dg.field && $("f-" + dg.field)) $("f-" + dg.field).focus();
      }
      if (d.transcript && d.transcript.length) {
        $("transcript").textContent = d.transcript.join("\n");
        $("transcript-box").hidden = false;
      }
      if (d.saved_settings) refreshAccounts();
      loadDashboard();
    });
  }

  $("btn-test").addEventListener("click", function () { runCheck(true); });
  $("btn-check").addEventListener("click", function () { runCheck(false); });

  /* ---- API keys ---------------------------------------------------------------------------- */

  function loadKeys() {
    api("GET", "keys").then(function (r) {
      var body = $("key-body");
      clear(body);
      if (r.status !== 200) { flash(firstError(r.data, r.status), "error"); return; }
      r.data.keys.forEach(function (k) {
        var revoke = null;
        if (!k.revoked) {
          revoke = el("button", { type: "button", className: "small danger", text: "Revoke" });
          revoke.setAttribute("aria-label", "Revoke key " + k.name);
          revoke.addEventListener("click", function () {
            if (!window.confirm("Revoke the key \u201c" + k.name + "\u201d? Programs using it stop working within a second.")) return;
            api("DELETE", "keys/" + encodeURIComponent(k.name)).then(function (res) {
              if (res.status !== 200) { flash(firstError(res.data, res.status), "error"); return; }
              flash("The key \u201c" + k.name + "\u201d was revoked.");
              loadKeys();
            });
          });
        }
        body.appendChild(el("tr", {}, [
          el("td", { "data-label": "Name", text: k.name }),
          el("td", { "data-label": "Starts with", className: "mono", text: k.prefix + "\u2026" }),
          el("td", { "data-label": "Created", text: fmtTime(k.created_at) }),
          el("td", { "data-label": "Last used", text: k.last_used_at ? fmtTime(k.last_used_at) : "never" }),
          el("td", { "data-label": "Status" }, [el("span", { className: "state " + (k.revoked ? "failed" : "sent"), text: k.revoked ? "Revoked" : "Active" })]),
          el("td", {}, [revoke])
        ]));
      });
      $("key-empty").hidden = r.data.keys.length > 0;
    });
  }

  $("key-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var input = $("key-name");
    var err = $("e-key-name");
    input.removeAttribute("aria-invalid");
    err.hidden = true;
    $("key-new").hidden = true;
    api("POST", "keys", { name: input.value.trim() }).then(function (r) {
      if (r.status !== 201) {
        input.setAttribute("aria-invalid", "true");
        err.textContent = firstError(r.data, r.status);
        err.hidden = false;
        input.focus();
        return;
      }
      input.value = "";
      $("key-value").value = r.data.key;
      $("key-new").hidden = false;
      $("key-value").focus();
      $("key-value").select();
      loadKeys();
    });
  });
  $("key-copy").addEventListener("click", function () {
    var v = $("key-value");
    v.select();
    if (navigator.clipboard) navigator.clipboard.writeText(v.value).then(function () { flash("Copied."); });
  });

  /* ---- the sandbox inbox ------------------------------------------------------------------- */

  function fmtMs(ms) { return ms ? fmtTime(Math.floor(ms / 1000)) : ""; }

  function showFault(f) {
    var t = "No fault is switched on: the sandbox accepts every letter.";
    if (f && f.kind !== "none")
      t = "Switched on: " + f.kind + (f.mode === "share" ? " for " + f.value + "% of connections"
                                                        : " for the next " + f.value + " connection" + (f.value === 1 ? "" : "s")) + ".";
    $("sb-fault-now").textContent = t;
  }

  function renderSandboxLetter(d) {
    var body = $("sb-letter-body");
    var c = d.content || { headers: [], attachments: [] };
    var subject = "";
    clear(body);
    (c.headers || []).forEach(function (h) { if (!subject && h.name.toLowerCase() === "subject") subject = h.value; });
    $("sb-letter-h").textContent = subject || "(no subject)";
    var pick = function (n) {
      var v = "";
      (c.headers || []).forEach(function (h) { if (!v && h.name.toLowerCase() === n) v = h.value; });
      return v;
    };
    body.appendChild(el("div", { className: "card" }, [facts([["From", pick("from")], ["To", pick("to")],
      ["Date", pick("date")], ["Message-ID", pick("message-id")], ["Received", fmtMs(d.letter.received_ms)],
      ["Size", fmtSize(d.letter.size)]])]));
    var pv = c.preview;
    var base = "/panel/api/sandbox/" + encodeURIComponent(d.letter.id);
    if (d.has_html) {
      /* the letter's HTML in a sandboxed frame: no script, no request (the route's own CSP) */
      var frame = document.createElement("iframe");
      frame.setAttribute("sandbox", "");
      frame.setAttribute("referrerpolicy", "no-referrer");
      frame.id = "sb-html";
      frame.className = "letter-html";
      frame.title = "The letter as HTML";
      frame.src = base + "/html";
      body.appendChild(section("HTML", [frame]));
    }
    body.appendChild(section("Text", pv && pv.type === "text/plain" ? [el("pre", { className: "body", id: "sb-text", text: pv.text })]
                                        : [el("p", { className: "empty", text: "No plain-text part." })]));
    body.appendChild(section("Attachments", (c.attachments || []).length ? [
      el("ul", { id: "sb-attachments" }, c.attachments.map(function (a, i) {
        var link = el("a", { href: base + "/attachments/" + i, text: a.filename || "(no name)" });
        link.setAttribute("download", a.filename || "attachment");
        return el("li", {}, [link, " " + a.content_type + ", " + fmtSize(a.size)]);
      }))] : [el("p", { className: "empty", text: "None." })]));
    body.appendChild(section("Header fields", [el("table", {}, [el("tbody", {}, (c.headers || []).map(function (h) {
      return el("tr", {}, [el("th", { scope: "row", text: h.name }), el("td", { className: "mono", text: h.value })]);
    }))])]));
  }

  function loadSandbox(id) {
    $("sb-letter").hidden = !id;
    $("sb-list").hidden = !!id;
    if (id) {
      clear($("sb-letter-body"));
      $("sb-letter-h").textContent = "Loading\u2026";
      api("GET", "sandbox/" + encodeURIComponent(id)).then(function (r) {
        if (r.status !== 200) {
          $("sb-letter-h").textContent = "Not found";
          $("sb-letter-body").appendChild(el("p", { text: firstError(r.data, r.status) }));
          return;
        }
        renderSandboxLetter(r.data);
      });
      return;
    }
    api("GET", "sandbox").then(function (r) {
      var body = $("sb-body");
      clear(body);
      if (r.status !== 200) { flash(firstError(r.data, r.status), "error"); return; }
      r.data.letters.forEach(function (m) {
        var link = el("a", { href: "#/sandbox/" + encodeURIComponent(m.id), text: m.subject || "(no subject)" });
        body.appendChild(el("tr", { "data-id": m.id }, [el("td", { text: fmtMs(m.received_ms) }), el("td", { text: m.from }),
                                                      el("td", { text: m.to }), el("td", {}, [link])]));
      });
      $("sb-empty").hidden = r.data.letters.length > 0;
      showFault(r.data.fault);
    });
  }

  $("sb-refresh").addEventListener("click", function () { loadSandbox(""); });
  $("sb-clear").addEventListener("click", function () {
    if (!window.confirm("Delete every letter in the sandbox inbox?")) return;
    api("DELETE", "sandbox").then(function (r) {
      if (r.status !== 200) { flash(firstError(r.data, r.status), "error"); return; }
      flash(r.data.deleted + " letter" + (r.data.deleted === 1 ? "" : "s") + " deleted.");
      loadSandbox("");
    });
  });
  function setFault(body) {
    api("PUT", "sandbox/fault", body).then(function (r) {
      if (r.status !== 200) { flash(firstError(r.data, r.status), "error"); return; }
      showFault(r.data.fault);
      flash(r.data.fault.kind === "none" ? "Faults are off." : "The fault is on.");
    });
  }
  $("sb-fault-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    setFault({ kind: $("sb-fault-kind").value, mode: $("sb-fault-mode").value,
               value: parseInt($("sb-fault-value").value, 10) || 1 });
  });
  $("sb-fault-off").addEventListener("click", function () { setFault({ kind: "none" }); });

  /* ---- the admin password ------------------------------------------------------------------- */

  /* the server's field names, and "again" (compared here only), to the form's inputs */
  var PW_INPUTS = { current: "pw-current", "new": "pw-new", again: "pw-new2" };

  function pwFieldsClear() {
    Object.keys(PW_INPUTS).forEach(function (f) {
      clearFieldError($(PW_INPUTS[f]), $("e-" + PW_INPUTS[f]));
    });
  }

  /* Marks field red with its reason under it, as the mail settings form does; false when
   * the form has no such field. */
  function pwFieldError(field, message) {
    if (!field || !Object.prototype.hasOwnProperty.call(PW_INPUTS, field)) return false;
    var id = PW_INPUTS[field];
    var input = $(id);
    var err = $("e-" + id);
    input.setAttribute("aria-invalid", "true");
    if (!err.hidden) err.appendChild(document.createTextNode("\n"));
    err.appendChild(document.createTextNode(capital(message)));
    err.hidden = false;
    var d = (input.getAttribute("aria-describedby") || "").split(/\s+/).filter(Boolean);
    if (d.indexOf(err.id) < 0) d.unshift(err.id);
    input.setAttribute("aria-describedby", d.join(" "));
    return true;
  }

  function pwFocusFirstError() {
    var first = document.querySelector("#pw-form [aria-invalid=true]");
    if (first) { first.focus(); first.select(); }
  }

  /* A fresh form each time the view opens: passwords do not linger in the page. */
  function resetPasswordForm() {
    $("pw-form").reset();
    pwFieldsClear();
    $("pw-done").hidden = true;
  }

  $("pw-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    pwFieldsClear();
    $("pw-done").hidden = true;
    var body = { current: $("pw-current").value, "new": $("pw-new").value };
    if (body["new"] && body["new"] !== $("pw-new2").value) {
      pwFieldError("again", "the two new passwords differ: type the same new password in both fields");
      pwFocusFirstError();
      return;
    }
    var save = $("pw-save");
    save.disabled = true;
    api("POST", "password", body).then(function (r) {
      save.disabled = false;
      if (r.status === 200) {
        $("pw-form").reset();
        var done = $("pw-done");
        done.textContent = "The admin password was changed. Every other browser where the panel " +
          "was open has been signed out; this one stays logged in. Use the new password next time.";
        done.hidden = false;
        done.focus();
        return;
      }
      var errors = r.data && r.data.errors ? r.data.errors : [];
      /* a problem without a field here (the session, the data folder) goes to the flash */
      var unmarked = errors.filter(function (e) { return !pwFieldError(e.field, e.message); });
      if (unmarked.length) flash(capital(unmarked[0].message), "error");
      else if (!errors.length) flash(firstError(r.data, r.status), "error");
      pwFocusFirstError();
    });
  });

  /* ---- start ---------------------------------------------------------------------------------- */

  $("logout").addEventListener("click", function () {
    fetch("/panel/logout", { method: "POST", credentials: "same-origin",
                             headers: { "X-CSRF-Token": csrf || "" } }).then(function () {
      window.location.assign("/login");
    });
  });

  api("GET", "session").then(function (r) {
    if (r.status !== 200) return;
    csrf = r.data.csrf;
    window.addEventListener("hashchange", route);
    route();
    setInterval(function () { if (!document.hidden) loadDashboard(); }, 30000);
  });
})();
