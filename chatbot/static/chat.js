(() => {
  const setRequest = (value) => {
    const box = document.querySelector('#article-request textarea, #article-request input');
    if (!box) return;
    box.value = value;
    box.dispatchEvent(new Event('input', {bubbles: true}));
    setTimeout(() => document.querySelector('#article-open')?.click(), 50);
  };
  document.addEventListener('click', async (event) => {
    const cite = event.target.closest('button.cite');
    if (cite) {
      const answer = cite.closest('.answer');
      const source = answer?.querySelector(`details.source[data-n="${cite.dataset.n}"]`);
      if (source) {
        source.open = true;
        source.scrollIntoView({block: 'nearest', behavior: 'smooth'});
        source.querySelector('summary')?.focus({preventScroll: true});
      }
      return;
    }
    const open = event.target.closest('button.open-article');
    if (open) {
      setRequest(JSON.stringify({article: open.dataset.article, spans: open.dataset.spans}));
      return;
    }
    const suggest = event.target.closest('button.suggest');
    if (suggest) {  // asked in the conversation, as if typed
      const box = document.querySelector('#question textarea');
      if (!box) return;
      box.value = suggest.dataset.question || '';
      box.dispatchEvent(new Event('input', {bubbles: true}));
      setTimeout(() => document.querySelector('#send')?.click(), 50);
      return;
    }
    const copy = event.target.closest('button.copy-answer');
    if (copy) {
      const text = copy.dataset.copy || '';
      try { await navigator.clipboard.writeText(text); }
      catch (e) {
        const area = document.createElement('textarea');
        area.value = text; document.body.appendChild(area); area.select();
        document.execCommand('copy'); area.remove();
      }
      copy.dataset.copied = '1';
      copy.textContent = copy.dataset.done || '✓';
    }
  });
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Escape') document.querySelector('#stop')?.click();
  });
  // The 👍/👎 buttons in French: Gradio labels them in the browser's language («Like»), and
  // in English («Liked») once pressed, and has no setting for it.
  const LIKES = {Like: 'J’aime', "J'aime": 'J’aime', Liked: 'Vous aimez', Dislike: 'Je n’aime pas',
    "Je n'aime pas": 'Je n’aime pas', Disliked: 'Vous n’aimez pas'};
  new MutationObserver(() => {
    document.querySelectorAll('#conversation button[aria-label]').forEach((button) => {
      const label = LIKES[button.getAttribute('aria-label')];
      if (label && label !== button.getAttribute('aria-label')) {
        button.setAttribute('aria-label', label);
        if (button.title) button.title = label;
      }
    });
  }).observe(document.documentElement, {subtree: true, childList: true, attributes: true,
                                         attributeFilter: ['aria-label']});
  // Work shown at once: the first answer of a page waits ~0.7 s for Gradio to open its event
  // stream, so the page says it started before the server's first word, then steps aside.
  const started = () => {
    const status = document.querySelector('#chat-status');
    if (!status) return;
    status.textContent = 'Recherche dans les articles…';
    status.hidden = false;
    const conversation = document.querySelector('#conversation');
    const done = new MutationObserver(() => { status.hidden = true; done.disconnect(); });
    if (conversation) done.observe(conversation, {subtree: true, childList: true, characterData: true});
  };
  document.addEventListener('keydown', (event) => {
    const box = event.target.closest?.('#question');
    if (box && event.key === 'Enter' && !event.shiftKey && event.target.value.trim()) started();
  }, true);
  document.addEventListener('click', (event) => {
    if (event.target.closest('#send') && document.querySelector('#question textarea')?.value.trim()) started();
  }, true);
})();
