// Sign in with a user's name and password (POST /auth/login), or with an admin token (the one
// printed at first start, TOLLWAY_ADMIN_TOKEN, or one made for a user).
import { useState } from "preact/hooks";
import { api, setToken } from "../api";
import { Field, Form, Text } from "../components/form";

type Login = { token: string };

export function SignIn({ onSignedIn }: { onSignedIn: (token: string) => void }) {
  const [mode, setMode] = useState<"password" | "token">("password");
  const [name, setName] = useState("");
  const [password, setPassword] = useState("");
  const [token, setHeldToken] = useState("");

  const withPassword = async () => {
    const found = await api<Login>("POST", "/auth/login", { body: { name, password } });
    onSignedIn(found.token);
  };
  const withToken = async () => {
    const held = token.trim();
    setToken(held);
    try {
      await api("GET", "/me");
    } catch (failure) {
      setToken(null);
      throw failure;
    }
    onSignedIn(held);
  };
  return (
    <div class="signin">
      <div class="signin-card">
        <h1>
          <span class="brand-mark" aria-hidden="true">⟠</span> Tollway console
        </h1>
        <div class="tabs" role="tablist">
          <button type="button" role="tab" aria-selected={mode === "password"} onClick={() => setMode("password")}>
            Password
          </button>
          <button type="button" role="tab" aria-selected={mode === "token"} onClick={() => setMode("token")}>
            Admin token
          </button>
        </div>
        {mode === "password" ? (
          <Form onSubmit={withPassword} submit="Sign in">
            <Field label="User name">
              <Text name="name" value={name} onInput={setName} required autoComplete="username" />
            </Field>
            <Field label="Password">
              <Text name="password" type="password" value={password} onInput={setPassword} required autoComplete="current-password" />
            </Field>
          </Form>
        ) : (
          <Form onSubmit={withToken} submit="Sign in">
            <Field label="Admin token" hint="twa-…: printed at first start, TOLLWAY_ADMIN_TOKEN, or made for a user">
              <Text name="token" type="password" value={token} onInput={setHeldToken} required autoComplete="off" />
            </Field>
          </Form>
        )}
      </div>
    </div>
  );
}
