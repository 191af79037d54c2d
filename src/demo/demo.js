// The demo app: a web app in front of the gateway, written the way a product team would
// write one, on the gateway's client package (served here as /demo/client.js). The refresh
// token never reaches this script (HttpOnly cookie); the access token lives in the client's
// memory only.

import { createGatewayClient, GatewayError } from './client.js'

const PROVIDER_LABELS = { kakao: 'Kakao', naver: 'Naver', google: 'Google', apple: 'Apple' }
const labelOf = (provider) => PROVIDER_LABELS[provider] ?? provider
const RETURN_TO = `${location.origin}/demo`
// Set when a provider link is followed, so the page can say "logged in" when the browser returns.
const LOGIN_PENDING = 'demo:login-pending'

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
const reasonOf = (error) => (error instanceof GatewayError ? error.message : String(error))

const gateway = createGatewayClient({
  baseUrl: location.origin,
  platform: 'web',
  // A refresh the gateway refused: logged out elsewhere, revoked, expired.
  onSignedOut: (reason) => {
    if (reason !== 'session_ended') return
    notice('The session has ended; please log in again.', true)
    void showSignedOut()
  },
})

async function showSignedOut() {
  const providers = await gateway.providers()
  $('providers').replaceChildren(
    ...providers.map((provider) => {
      const link = document.createElement('a')
      link.dataset.provider = provider
      link.href = gateway.authorizeUrl(provider, { returnTo: RETURN_TO })
      link.textContent = `Log in with ${labelOf(provider)}`
      link.addEventListener('click', () => sessionStorage.setItem(LOGIN_PENDING, provider))
      return link
    }),
  )
  show('signed-out')
}

/** Shows who is signed in; false when the gateway no longer knows the session. */
async function showSignedIn() {
  let me
  try {
    me = await gateway.me()
  } catch (error) {
    if (gateway.state === 'signed_out') return false // onSignedOut said so
    notice(`The account could not be read (${reasonOf(error)}).`, true)
    return false
  }
  $('nickname').textContent = me.nickname
  $('user-id').textContent = me.id
  $('email').textContent = me.email ?? '(none)'
  $('expires').textContent = `${Math.round((gateway.accessTokenExpiresAt - Date.now()) / 1000)} s`
  await showIdentities(me.identities)
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
        try {
          await gateway.unlink(identity.id)
        } catch (error) {
          return notice(`Unlink refused: ${reasonOf(error)}`, true)
        }
        // The list first, then the line saying it changed.
        await showIdentities(await gateway.identities())
        notice(`${labelOf(identity.provider)} is no longer linked to this account.`)
      })
      item.append(unlink)
      return item
    }),
  )
  const linked = new Set(identities.map((identity) => identity.provider))
  $('link-providers').replaceChildren(
    ...(await gateway.providers())
      .filter((provider) => !linked.has(provider))
      .map((provider) => {
        const button = document.createElement('button')
        button.dataset.provider = provider
        button.textContent = `Link ${labelOf(provider)}`
        button.addEventListener('click', async () => {
          try {
            location.assign((await gateway.startLink(provider, { returnTo: RETURN_TO })).authorizationUrl)
          } catch (error) {
            notice(`Linking could not start: ${reasonOf(error)}`, true)
          }
        })
        return button
      }),
  )
}

function showSignup({ provider, profile, missing }) {
  $('signup-provider').textContent = labelOf(provider)
  const form = $('signup-form')
  form.nickname.value = profile.nickname ?? ''
  form.email.value = profile.email ?? ''
  form.email.required = missing.includes('email')
  $('email-required').textContent = form.email.required ? '*' : ''
  show('signup')
}

$('signup-form').addEventListener('submit', async (event) => {
  event.preventDefault()
  const form = event.target
  const fields = { nickname: form.nickname.value }
  if (form.email.value) fields.email = form.email.value
  let created
  try {
    created = await gateway.finishSignup(fields)
  } catch (error) {
    return notice(`Signup failed: ${reasonOf(error)}`, true)
  }
  history.replaceState(null, '', '/demo')
  if (await showSignedIn()) notice(`Account created: welcome, ${created.user.nickname}.`)
})

$('refresh').addEventListener('click', async () => {
  try {
    await gateway.refresh()
  } catch (error) {
    if (gateway.state !== 'signed_out') notice(`The refresh failed (${reasonOf(error)}); still signed in, try again.`, true)
    return
  }
  if (await showSignedIn()) {
    notice(`Tokens refreshed at ${now()}: a new access token, and a new refresh token in the cookie (the previous one is retired).`)
  }
})
$('logout').addEventListener('click', async () => {
  try {
    await gateway.logout()
  } catch (error) {
    notice(`Logout failed at the gateway (${reasonOf(error)}); this page forgot the session, the cookie may still hold it.`, true)
    return showSignedOut()
  }
  notice('You are logged out.')
  return showSignedOut()
})

async function start() {
  const loginPending = sessionStorage.getItem(LOGIN_PENDING)
  sessionStorage.removeItem(LOGIN_PENDING)
  let outcome
  try {
    outcome = await gateway.completeRedirect(location.href)
  } catch (error) {
    if (gateway.state === 'signed_out') return // the refresh cookie was refused: onSignedOut said so
    if (error instanceof GatewayError && error.error === 'invalid_signup_token') notice('The signup has expired; please log in again.')
    else notice(`The gateway could not be reached (${reasonOf(error)}).`, true)
    return showSignedOut()
  }
  if (outcome.status === 'signup_required') return showSignup(outcome)
  if (outcome.status === 'error' && outcome.during === 'login') notice(`Login did not complete: ${outcome.error}`, true)
  if (gateway.state !== 'signed_in') return showSignedOut()
  if (!(await showSignedIn())) return
  if (outcome.status === 'linked') notice(`${labelOf(outcome.provider)} is now linked to this account.`)
  else if (outcome.status === 'error') notice(`Linking did not complete: ${outcome.error}`, true)
  else notice(loginPending ? `Logged in with ${labelOf(loginPending)}.` : 'Welcome back: the session was resumed from the refresh cookie.')
}

await start()
