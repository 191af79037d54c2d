// The demo app: only public gateway endpoints, the way a product team's web app uses them.
// The refresh token never reaches this script (HttpOnly cookie); the access token lives in
// memory only.

const PROVIDER_LABELS = { kakao: 'Kakao', naver: 'Naver', google: 'Google', apple: 'Apple' }
const labelOf = (provider) => PROVIDER_LABELS[provider] ?? provider
let accessToken

const $ = (id) => document.getElementById(id)
const show = (section) => {
  for (const id of ['signed-out', 'signup', 'signed-in']) $(id).hidden = id !== section
}
// Every action ends with a line saying what happened; `problem` marks the ones that failed.
const notice = (text, problem = false) => {
  $('notice').textContent = text
  $('notice').hidden = !text
  $('notice').classList.toggle('problem', problem)
}
const now = () => new Date().toLocaleTimeString()
// Set when a provider link is followed, so the page can say "logged in" when the browser returns.
const LOGIN_PENDING = 'demo:login-pending'

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    credentials: 'same-origin',
    headers: { ...(body ? { 'content-type': 'application/json' } : {}), ...(accessToken ? { authorization: `Bearer ${accessToken}` } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  })
  const data = response.status === 204 ? undefined : await response.json()
  return { ok: response.ok, status: response.status, data }
}

async function showSignedOut() {
  const { data } = await api('GET', '/auth/providers')
  const returnTo = `${location.origin}/demo`
  $('providers').replaceChildren(
    ...data.providers.map((provider) => {
      const link = document.createElement('a')
      link.dataset.provider = provider
      link.href = `/auth/authorize/${provider}?returnTo=${encodeURIComponent(returnTo)}`
      link.textContent = `Log in with ${labelOf(provider)}`
      link.addEventListener('click', () => sessionStorage.setItem(LOGIN_PENDING, provider))
      return link
    }),
  )
  show('signed-out')
}

/** Shows who is signed in with these tokens; false when the gateway does not know them. */
async function showSignedIn(tokens) {
  accessToken = tokens.accessToken
  const me = await api('GET', '/auth/me')
  if (!me.ok) {
    accessToken = undefined
    notice(`The access token was refused (${me.data?.message ?? `status ${me.status}`}); please log in again.`, true)
    await showSignedOut()
    return false
  }
  $('nickname').textContent = me.data.nickname
  $('user-id').textContent = me.data.id
  $('email').textContent = me.data.email ?? '(none)'
  $('expires').textContent = `${tokens.expiresIn} s`
  await showIdentities(me.data.identities)
  show('signed-in')
  return true
}

/** The account's identities, each with Unlink, and a Link button per provider not linked yet. */
async function showIdentities(identities) {
  $('identities').replaceChildren(
    ...identities.map((identity) => {
      const item = document.createElement('li')
      item.dataset.provider = identity.provider
      item.textContent = `${labelOf(identity.provider)}${identity.email ? ` (${identity.email})` : ''}, linked ${new Date(identity.linkedAt).toLocaleString()} `
      const unlink = document.createElement('button')
      unlink.textContent = 'Unlink'
      unlink.addEventListener('click', async () => {
        const removed = await api('DELETE', `/auth/identities/${identity.id}`)
        if (!removed.ok) return notice(`Unlink refused: ${removed.data?.message ?? `status ${removed.status}`}`, true)
        notice(`${labelOf(identity.provider)} is no longer linked to this account.`)
        const me = await api('GET', '/auth/me')
        if (me.ok) await showIdentities(me.data.identities)
      })
      item.append(unlink)
      return item
    }),
  )
  const { data } = await api('GET', '/auth/providers')
  const linked = new Set(identities.map((identity) => identity.provider))
  $('link-providers').replaceChildren(
    ...data.providers
      .filter((provider) => !linked.has(provider))
      .map((provider) => {
        const button = document.createElement('button')
        button.dataset.provider = provider
        button.textContent = `Link ${labelOf(provider)}`
        button.addEventListener('click', async () => {
          const started = await api('POST', '/auth/identities/start', { provider, returnTo: `${location.origin}/demo` })
          if (!started.ok) return notice(`Linking could not start: ${started.data?.message ?? `status ${started.status}`}`, true)
          location.assign(started.data.authorizationUrl)
        })
        return button
      }),
  )
}

/** Rotates the refresh cookie; false when the session has ended. */
async function refresh() {
  const refreshed = await api('POST', '/auth/token')
  if (refreshed.ok) return showSignedIn(refreshed.data)
  accessToken = undefined
  notice(`The session has ended (${refreshed.data?.message ?? `status ${refreshed.status}`}); please log in again.`, true)
  await showSignedOut()
  return false
}

// At start-up: refresh only when the browser holds a refresh cookie (GET /auth/session), so
// a first visit shows the login without a refused refresh.
async function resumeSession() {
  const state = await api('GET', '/auth/session')
  if (!state.ok || !state.data.refreshCookie) {
    await showSignedOut()
    return false
  }
  return refresh()
}

async function showSignup() {
  const pending = await api('GET', '/auth/signup')
  if (!pending.ok) {
    notice('The signup has expired; please log in again.')
    return showSignedOut()
  }
  $('signup-provider').textContent = labelOf(pending.data.provider)
  const form = $('signup-form')
  form.nickname.value = pending.data.profile.nickname ?? ''
  form.email.value = pending.data.profile.email ?? ''
  form.email.required = pending.data.missing.includes('email')
  $('email-required').textContent = form.email.required ? '*' : ''
  show('signup')
}

$('signup-form').addEventListener('submit', async (event) => {
  event.preventDefault()
  const form = event.target
  const body = { nickname: form.nickname.value }
  if (form.email.value) body.email = form.email.value
  const created = await api('POST', '/auth/signup', body)
  if (!created.ok) return notice(`Signup failed: ${created.data.message}`, true)
  history.replaceState(null, '', '/demo')
  if (await showSignedIn(created.data)) notice(`Account created: welcome, ${created.data.user.nickname}.`)
})

$('refresh').addEventListener('click', async () => {
  if (await refresh()) {
    notice(`Tokens refreshed at ${now()}: a new access token, and a new refresh token in the cookie (the previous one is retired).`)
  }
})
$('logout').addEventListener('click', async () => {
  const ended = await api('POST', '/auth/logout')
  if (!ended.ok) return notice(`Logout failed: ${ended.data?.message ?? `status ${ended.status}`}`, true)
  accessToken = undefined
  notice('You are logged out.')
  return showSignedOut()
})

const params = new URLSearchParams(location.search)
const loginPending = sessionStorage.getItem(LOGIN_PENDING)
sessionStorage.removeItem(LOGIN_PENDING)
if (params.get('error')) notice(`Login did not complete: ${params.get('error')}`, true)
if (params.get('signup') === 'required') await showSignup()
else if (await resumeSession()) {
  if (params.get('linked')) notice(`${labelOf(params.get('linked'))} is now linked to this account.`)
  else if (params.get('link_error')) notice(`Linking did not complete: ${params.get('link_error')}`, true)
  else notice(loginPending ? `Logged in with ${labelOf(loginPending)}.` : 'Welcome back: the session was resumed from the refresh cookie.')
}
