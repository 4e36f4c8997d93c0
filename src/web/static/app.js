// Release Server's pages work without this script; it adds search as you type (from /search.json, fetched once)
// and copy buttons. No framework, nothing from another host.
(() => {
  'use strict';

  for (const button of document.querySelectorAll('button[data-copy]')) {
    button.hidden = false;
    button.addEventListener('click', async () => {
      const text = button.getAttribute('data-copy') || '';
      try {
        await navigator.clipboard.writeText(text);
        say(button, 'Copied');
      } catch {
        say(button, 'Press Ctrl+C to copy');
        const target = document.getElementById(button.getAttribute('aria-controls') || '');
        if (target) window.getSelection().selectAllChildren(target);
      }
    });
  }

  // A command or file wider than its box scrolls sideways: make it reachable from the keyboard (arrow keys scroll
  // it once focused), and only then, so that boxes that fit add no stop to the tab order.
  const pres = document.querySelectorAll('pre');
  const focusScrollable = () => {
    for (const pre of pres) {
      if (pre.scrollWidth > pre.clientWidth) pre.tabIndex = 0;
      else pre.removeAttribute('tabindex');
    }
  };
  focusScrollable();
  let resizing = 0;
  window.addEventListener('resize', () => {
    cancelAnimationFrame(resizing);
    resizing = requestAnimationFrame(focusScrollable);
  });

  function say(button, text) {
    const label = button.textContent;
    button.textContent = text;
    const status = document.getElementById('status');
    if (status) status.textContent = text;
    setTimeout(() => (button.textContent = label), 1500);
  }

  const input = document.getElementById('q');
  const results = document.getElementById('results');
  const count = document.getElementById('result-count');
  if (!input || !results) return;
  let index = null;
  const load = () => (index ??= fetch(results.getAttribute('data-index'), { credentials: 'same-origin' }).then((r) => r.json()).then((d) => d.items));
  input.addEventListener('focus', load, { once: true });
  let timer = 0;
  input.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(async () => render(search(await load(), input.value)), 60);
  });

  function search(items, query) {
    const words = query.toLowerCase().split(/\s+/).filter(Boolean);
    if (words.length === 0) return items;
    return items.filter((item) => {
      const text = [item.kind, item.id, item.name, item.description, ...item.tags].join(' ').toLowerCase();
      return words.every((word) => text.includes(word));
    });
  }

  function render(items) {
    results.replaceChildren(...items.slice(0, 100).map(row));
    if (count) count.textContent = `${items.length} result${items.length === 1 ? '' : 's'}`;
    const url = new URL(window.location.href);
    if (input.value) url.searchParams.set('q', input.value);
    else url.searchParams.delete('q');
    history.replaceState(null, '', url);
  }

  function row(item) {
    const li = document.createElement('li');
    const a = document.createElement('a');
    a.href = item.url;
    a.textContent = item.name;
    const kind = document.createElement('span');
    kind.className = 'kind';
    kind.textContent = item.kind === 'step' ? 'workflow step' : item.kind;
    const version = document.createElement('span');
    version.className = 'version';
    version.textContent = item.version;
    const head = document.createElement('p');
    head.className = 'item-head';
    head.append(a, ' ', kind, ' ', version);
    const text = document.createElement('p');
    text.className = 'item-text';
    text.textContent = item.description;
    li.append(head, text);
    if (item.tags.length) {
      const tags = document.createElement('p');
      tags.className = 'tags';
      tags.textContent = item.tags.join(' · ');
      li.append(tags);
    }
    return li;
  }
})();
