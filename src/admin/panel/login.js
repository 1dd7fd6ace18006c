/*
 * login.js - the login page and the first-start page (setup.html): posts the password as
 * JSON to the form's data-action (/panel/login or /panel/setup) and, once the server has
 * set the session cookie, goes on to the panel. Errors show above the form (role=alert)
 * and mark the password field. No library, no inline script (the CSP forbids it).
 */
"use strict";

(function () {
  var form = document.getElementById("gate-form");
  var box = document.getElementById("gate-error");
  var pw = document.getElementById("g-password");

  function showError(text, field) {
    box.textContent = text;
    box.hidden = false;
    (field || pw).setAttribute("aria-invalid", "true");
    (field || pw).focus();
  }

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var confirmId = form.getAttribute("data-confirm");
    var button = form.querySelector("button[type=submit]");
    box.hidden = true;
    pw.removeAttribute("aria-invalid");
    if (confirmId) {
      var again = document.getElementById(confirmId);
      again.removeAttribute("aria-invalid");
      if (pw.value.length < 8) {
        showError("Use at least 8 characters (any characters work).");
        return;
      }
      if (pw.value !== again.value) {
        showError("The two passwords differ: type the same password twice.", again);
        return;
      }
    }
    button.disabled = true;
    fetch(form.getAttribute("data-action"), {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ password: pw.value })
    }).then(function (resp) {
      return resp.json().catch(function () { return {}; }).then(function (data) {
        if (resp.ok) {
          window.location.replace("/panel/");
          return;
        }
        var msg = data && data.errors && data.errors[0] ? data.errors[0].message
          : "The server answered " + resp.status + ".";
        if (resp.status === 429)
          msg = "Too many wrong passwords. " + msg;
        showError(msg.charAt(0).toUpperCase() + msg.slice(1));
      });
    }).catch(function () {
      showError("The server cannot be reached. Is mailout serve running?");
    }).then(function () {
      button.disabled = false;
    });
  });
})();
