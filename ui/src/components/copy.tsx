// A secret shown once (a new key, a new token), with a button that copies it.
import { useState } from "preact/hooks";

export function CopyButton({ text, label = "Copy" }: { text: string; label?: string }) {
  const [copied, setCopied] = useState(false);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      // Clipboard access can be refused (an insecure origin): select the text instead.
      const range = document.createRange();
      const node = document.querySelector(`[data-secret="${CSS.escape(text)}"]`);
      if (node) {
        range.selectNodeContents(node);
        getSelection()?.removeAllRanges();
        getSelection()?.addRange(range);
      }
    }
    setCopied(true);
    setTimeout(() => setCopied(false), 2000);
  };
  return (
    <button type="button" onClick={copy} aria-live="polite">
      {copied ? "Copied" : label}
    </button>
  );
}

export function SecretOnce({ secret, what }: { secret: string; what: string }) {
  return (
    <div class="secret-once">
      <p>
        This {what} is shown <strong>once</strong>: copy it now. Tollway keeps only its hash.
      </p>
      <div class="secret-row">
        <code data-secret={secret} class="secret">
          {secret}
        </code>
        <CopyButton text={secret} />
      </div>
    </div>
  );
}
