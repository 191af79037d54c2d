// The Redis key layout of sessions, in a module with no imports: the gateway writes it and
// resource servers that check revocation (this package) read it, from this one file.

/**
 * The key layout. A session key exists exactly while the session lives: resource servers
 * that share this Redis check `EXISTS sessionKeys.session(sub, sid)` to refuse access
 * tokens of ended sessions at once (verifier/).
 */
export const sessionKeys = {
  session: (userId: string, sessionId: string) => `gw:{${userId}}:s:${sessionId}`,
  /** The user's session ids, scored by last use. */
  index: (userId: string) => `gw:{${userId}}:index`,
  /**
   * What the user may do, per resource ('' for the gateway itself): a hash of
   * `<checkedAt ms> <scopes>` read by the rotation script, so a refresh needs one call.
   */
  scopes: (userId: string) => `gw:{${userId}}:scopes`,
  /**
   * Set for a while once the account is deleted: a login that found the account before
   * then cannot start a session for it afterwards.
   */
  deleted: (userId: string) => `gw:{${userId}}:deleted`,
}
