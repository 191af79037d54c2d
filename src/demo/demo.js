// The demo app: only public gateway endpoints, the way a product team's web app uses them.
// The refresh token never reaches this script (HttpOnly cookie); the access token lives in
// memory only.

const PROVIDER_LABELS = { kakao: 'Kakao', naver: 'Naver', google: 'Google' }
let accessToken

const $ = (id) => document.getElementById(id)
const show = (section) => {
  for (const id of ['signed-out', 'signup', 'signed-in']) $(id).hidden = id !== section
}
const notice = (text) => {
  $('notice').textContent = text
  $('notice').hidden = !text
}

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
  const { data } = await api('GET', '/.well-known/openid-configuration')
  const returnTo = `${location.origin}/demo`
  $('providers').replaceChildren(
    ...data.providers_supported.map((provider) => {
      const link = document.createElement('a')
      link.dataset.provider = provider
      link.href = `/auth/authorize/${provider}?returnTo=${encodeURIComponent(returnTo)}`
      link.textContent = `Log in with ${PROVIDER_LABELS[provider] ?? provider}`
      return link
    }),
  )
  show('signed-out')
}

async function showSignedIn(tokens) {
  accessToken = tokens.accessToken
  const me = await api('GET', '/auth/me')
  if (!me.ok) return showSignedOut()
  $('nickname').textContent = me.data.nickname
  $('user-id').textContent = me.data.id
  $('email').textContent = me.data.email ?? '(none)'
  $('identities').textContent = me.data.identities.map((identity) => identity.provider).join(', ')
  $('expires').textContent = `${tokens.expiresIn} s`
  show('signed-in')
}

async function refresh() {
  const refreshed = await api('POST', '/auth/token')
  if (refreshed.ok) return showSignedIn(refreshed.data)
  accessToken = undefined
  return showSignedOut()
}

async function showSignup() {
  const pending = await api('GET', '/auth/signup')
  if (!pending.ok) {
    notice('The signup has expired; please log in again.')
    return showSignedOut()
  }
  $('signup-provider').textContent = PROVIDER_LABELS[pending.data.provider] ?? pending.data.provider
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
  if (!created.ok) return notice(created.data.message)
  history.replaceState(null, '', '/demo')
  notice('')
  return showSignedIn(created.data)
})

$('refresh').addEventListener('click', () => refresh())
$('logout').addEventListener('click', async () => {
  await api('POST', '/auth/logout')
  accessToken = undefined
  notice('You are logged out.')
  return showSignedOut()
})

const params = new URLSearchParams(location.search)
if (params.get('error')) notice(`Login did not complete: ${params.get('error')}`)
if (params.get('signup') === 'required') await showSignup()
else await refresh()
