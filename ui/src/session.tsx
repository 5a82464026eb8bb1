import { useEffect, useState } from 'preact/hooks';
import { api, ApiError, storedKey, storeKey, User, Whoami } from './api';
import { errorText } from './hooks';

/** Who is signed in and whose plans the dashboard shows. */
export interface Session {
  whoami: Whoami;
  /** The user whose plans are shown: the key's user, or the one an admin or an open server's visitor chose. */
  user: User;
}

const USER_STORAGE = 'karya.user';

function storedUser(): User | null {
  try {
    const raw = sessionStorage.getItem(USER_STORAGE);
    return raw ? (JSON.parse(raw) as User) : null;
  } catch {
    return null;
  }
}


type Step =
  | { name: 'checking' }
  | { name: 'key'; error: string | null }
  | { name: 'username'; whoami: Whoami; error: string | null; missing: string | null }
  | { name: 'ready'; session: Session };

/**
 * Sign-in as karya-ui does it, plus API keys: GET /v1/whoami without credentials tells the mode. Auth none:
 * a username (found with GET /v1/user?username=, created when missing). Apikey: the key first; a user key is
 * its user, the admin key chooses a user to look at.
 */
export function useSession(): { step: Step; submitKey(key: string): void; submitUsername(name: string, create?: boolean): void; switchUser(): void; signOut(): void } {
  const [step, setStep] = useState<Step>({ name: 'checking' });

  const resolve = async (key: string | null, keyError: string | null = null) => {
    let whoami: Whoami;
    try {
      whoami = await api<Whoami>('GET', '/whoami', undefined, key);
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) {
        storeKey(null);
        setStep({ name: 'key', error: key ? 'That key was not accepted. ' + e.message : keyError });
        return;
      }
      setStep({ name: 'key', error: errorText(e) });
      return;
    }
    storeKey(key);
    if (whoami.kind === 'user' && whoami.user) {
      setStep({ name: 'ready', session: { whoami, user: whoami.user } });
      return;
    }
    const chosen = storedUser();
    if (chosen) setStep({ name: 'ready', session: { whoami, user: chosen } });
    else setStep({ name: 'username', whoami, error: null, missing: null });
  };

  useEffect(() => {
    void resolve(storedKey());
  }, []);

  const submitKey = (key: string) => {
    setStep({ name: 'checking' });
    void resolve(key.trim());
  };

  const submitUsername = async (name: string, create = false) => {
    if (step.name !== 'username') return;
    const whoami = step.whoami;
    const trimmed = name.trim();
    if (!trimmed) {
      setStep({ ...step, error: 'Enter a username', missing: null });
      return;
    }
    let user: User | null = null;
    try {
      if (create) user = await api<User>('POST', '/user', { name: trimmed });
      else user = await api<User>('GET', `/user?username=${encodeURIComponent(trimmed)}`);
    } catch (e) {
      // karya-ui creates the user when it is not found; the admin is asked first (a typo must not create users).
      if (e instanceof ApiError && e.status === 404 && whoami.kind === 'open') {
        try {
          user = await api<User>('POST', '/user', { name: trimmed });
        } catch (e2) {
          setStep({ ...step, error: errorText(e2), missing: null });
          return;
        }
      } else if (e instanceof ApiError && e.status === 404) {
        setStep({ ...step, error: e.message, missing: trimmed });
        return;
      } else {
        setStep({ ...step, error: errorText(e), missing: null });
        return;
      }
    }
    sessionStorage.setItem(USER_STORAGE, JSON.stringify({ id: user.id, name: user.name }));
    setStep({ name: 'ready', session: { whoami, user } });
  };

  const switchUser = () => {
    if (step.name !== 'ready') return;
    sessionStorage.removeItem(USER_STORAGE);
    setStep({ name: 'username', whoami: step.session.whoami, error: null, missing: null });
  };

  /** Forgets the key and the chosen user; the next sign-in starts from whoami again. */
  const signOut = () => {
    storeKey(null);
    sessionStorage.removeItem(USER_STORAGE);
    location.hash = '#/';
    setStep({ name: 'checking' });
    void resolve(null);
  };

  return { step, submitKey, submitUsername: (n, c) => void submitUsername(n, c), switchUser, signOut };
}

export function KeyForm({ error, onSubmit }: { error: string | null; onSubmit(key: string): void }) {
  const [key, setKey] = useState('');
  return (
    <form
      class="signin card"
      data-testid="key-form"
      onSubmit={(e) => {
        e.preventDefault();
        onSubmit(key);
      }}
    >
      <h1>Sign in to Karya</h1>
      <p class="muted">This server needs an API key. It is kept in this tab only (sessionStorage) and sent as a Bearer token.</p>
      <label>
        API key
        <input name="apiKey" type="password" autocomplete="off" value={key} onInput={(e) => setKey(e.currentTarget.value)} placeholder="karya_…" required />
      </label>
      {error && <div class="field-error">{error}</div>}
      <button class="btn btn-primary" type="submit">
        Sign in
      </button>
    </form>
  );
}

export function UsernameForm({ whoami, error, missing, onSubmit }: { whoami: Whoami; error: string | null; missing: string | null; onSubmit(name: string, create?: boolean): void }) {
  const [name, setName] = useState('');
  const admin = whoami.kind === 'admin';
  return (
    <form
      class="signin card"
      data-testid="username-form"
      onSubmit={(e) => {
        e.preventDefault();
        onSubmit(name);
      }}
    >
      <h1>{admin ? 'Whose plans?' : 'Sign in to Karya'}</h1>
      <p class="muted">
        {admin ? 'Signed in with the admin key. Plans are listed per user: choose one.' : 'This server is open (auth mode none). Enter your username; a new one is created.'}
      </p>
      <label>
        Username
        <input name="username" value={name} onInput={(e) => setName(e.currentTarget.value)} autocomplete="username" required />
      </label>
      {error && <div class="field-error">{error}</div>}
      <div class="row">
        <button class="btn btn-primary" type="submit">
          Continue
        </button>
        {missing && (
          <button class="btn" type="button" onClick={() => onSubmit(missing, true)}>
            Create user “{missing}”
          </button>
        )}
      </div>
    </form>
  );
}
