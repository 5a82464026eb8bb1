import { render } from 'preact';
import 'uplot/dist/uPlot.min.css';
import './style.css';
import { useHashPath } from './hooks';
import { CreatePlan } from './pages/CreatePlan';
import { DeadLetters } from './pages/DeadLetters';
import { Overview } from './pages/Overview';
import { PlanDetail } from './pages/PlanDetail';
import { Plans } from './pages/Plans';
import { KeyForm, Session, UsernameForm, useSession } from './session';

const NAV = [
  { path: '/', label: 'Overview' },
  { path: '/plans', label: 'Plans' },
  { path: '/new', label: 'New plan' },
  { path: '/dead-letters', label: 'Dead letters' },
];

function Page({ path, session }: { path: string; session: Session }) {
  const detail = /^\/plans\/([^/]+)$/.exec(path);
  if (detail) return <PlanDetail id={decodeURIComponent(detail[1])} session={session} />;
  switch (path) {
    case '/':
      return <Overview session={session} />;
    case '/plans':
      return <Plans session={session} />;
    case '/new':
      return <CreatePlan session={session} />;
    case '/dead-letters':
      return <DeadLetters session={session} />;
    default:
      return (
        <div class="card">
          <h1>Not found</h1>
          <p>
            Nothing at <code>{path}</code>. <a href="#/">Back to the overview</a>
          </p>
        </div>
      );
  }
}

function App() {
  const path = useHashPath();
  const { step, submitKey, submitUsername, switchUser, signOut } = useSession();
  const session = step.name === 'ready' ? step.session : null;
  const section = path.startsWith('/plans') ? '/plans' : path;
  return (
    <>
      <header class="topbar">
        <a class="brand" href="#/">
          <img src="/ui/favicon.svg" alt="" width="22" height="22" /> Karya
        </a>
        {session && (
          <nav>
            {NAV.map((n) => (
              <a key={n.path} href={`#${n.path}`} class={section === n.path ? 'active' : ''}>
                {n.label}
              </a>
            ))}
          </nav>
        )}
        <div class="who">
          {session && (
            <>
              <span data-testid="signed-in-as" title={session.user.id}>
                {session.user.name}
                <span class="muted"> · {session.whoami.kind === 'user' ? 'user key' : session.whoami.kind === 'admin' ? 'admin' : 'open server'}</span>
              </span>
              {session.whoami.kind !== 'user' && (
                <button class="btn btn-small" onClick={switchUser}>
                  Switch user
                </button>
              )}
            </>
          )}
          {(session || step.name === 'username') && (
            <button class="btn btn-small" data-testid="sign-out" onClick={signOut}>
              Sign out
            </button>
          )}
        </div>
      </header>
      <main>
        {step.name === 'checking' && <p class="muted">Connecting…</p>}
        {step.name === 'key' && <KeyForm error={step.error} onSubmit={submitKey} />}
        {step.name === 'username' && <UsernameForm whoami={step.whoami} error={step.error} missing={step.missing} onSubmit={submitUsername} />}
        {session && <Page path={path} session={session} />}
      </main>
    </>
  );
}

render(<App />, document.getElementById('app')!);
