// The console's entry: sign-in until a token is held, then the signed-in user's console.
import { render } from "preact";
import { useCallback, useEffect, useState } from "preact/hooks";
import { ApiError, api, currentToken, onSignedOut, setToken } from "./api";
import { Shell } from "./components/layout";
import { ErrorNote, Loading } from "./components/feedback";
import { screenFor } from "./routes";
import { navigate, useRoute } from "./router";
import { SignIn } from "./screens/signin";
import { type Me, SessionContext } from "./session";
import "./style.css";

function App() {
  const [token, setHeld] = useState(currentToken());
  const [me, setMe] = useState<Me | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const route = useRoute();

  const signOut = useCallback(() => {
    setToken(null);
    setHeld(null);
    setMe(null);
  }, []);
  const refresh = useCallback(async () => {
    setMe(await api<Me>("GET", "/me"));
  }, []);

  useEffect(() => onSignedOut(() => signOut()), [signOut]);
  useEffect(() => {
    if (!token) return;
    setError(null);
    refresh().catch((failure: ApiError) => setError(failure));
  }, [token]);

  if (!token) {
    return (
      <SignIn
        onSignedIn={(held) => {
          setToken(held);
          setHeld(held);
          if (route.path === "/signin") navigate("/", true);
        }}
      />
    );
  }
  if (error) return <div class="center"><ErrorNote error={error} retry={() => refresh().catch(setError)} /></div>;
  if (!me) return <div class="center"><Loading what="Signing in" /></div>;
  const Screen = screenFor(route.path);
  return (
    <SessionContext.Provider value={{ me, signOut, refresh }}>
      <Shell>
        <Screen.component {...Screen.params} query={route.params} />
      </Shell>
    </SessionContext.Provider>
  );
}

render(<App />, document.getElementById("app")!);
