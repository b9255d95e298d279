/**
 * WWW-Authenticate parsing (RFC 9110 §11.6.1): the challenges a registry answers a 401 with.
 */

export interface AuthChallenge {
  /** Lowercased auth scheme ('bearer', 'basic', ...). */
  scheme: string;
  /** Parameters with lowercased names; quoted values unescaped. */
  params: Record<string, string>;
  /** The token68 form (`Negotiate abc==`), when the challenge used it instead of parameters. */
  token68?: string;
}

const TCHAR = /[!#$%&'*+.^_`|~0-9A-Za-z-]/;
const TOKEN68_CHAR = /[A-Za-z0-9\-._~+/]/;

/**
 * Parses a WWW-Authenticate header value (or several, as undici returns repeated headers as an array)
 * into its challenges. Tolerant: garbage between challenges is skipped, never thrown on.
 */
export function parseWwwAuthenticate(header: string | string[] | undefined): AuthChallenge[] {
  if (header === undefined) return [];
  if (Array.isArray(header)) return header.flatMap((h) => parseWwwAuthenticate(h));
  const s = header;
  let i = 0;
  const challenges: AuthChallenge[] = [];

  const skipWs = () => {
    while (i < s.length && (s[i] === ' ' || s[i] === '\t')) i++;
  };
  const readToken = (): string => {
    const start = i;
    while (i < s.length && TCHAR.test(s[i]!)) i++;
    return s.slice(start, i);
  };
  const readQuoted = (): string => {
    // s[i] === '"'
    i++;
    let out = '';
    while (i < s.length && s[i] !== '"') {
      if (s[i] === '\\' && i + 1 < s.length) i++;
      out += s[i];
      i++;
    }
    i++; // closing quote (or end of input)
    return out;
  };

  while (i < s.length) {
    // skip list separators and whitespace
    while (i < s.length && (s[i] === ',' || s[i] === ' ' || s[i] === '\t')) i++;
    if (i >= s.length) break;
    const scheme = readToken();
    if (scheme === '') {
      i++; // not a token character: skip it
      continue;
    }
    const challenge: AuthChallenge = { scheme: scheme.toLowerCase(), params: {} };
    challenges.push(challenge);
    skipWs();

    // token68 form, e.g. `Negotiate YII=`: a single token68 followed by the end or a comma
    {
      const start = i;
      while (i < s.length && TOKEN68_CHAR.test(s[i]!)) i++;
      while (i < s.length && s[i] === '=') i++;
      const candidate = s.slice(start, i);
      skipWs();
      if (candidate !== '' && (i >= s.length || s[i] === ',')) {
        challenge.token68 = candidate;
        continue;
      }
      i = start;
    }

    // auth-param list
    for (;;) {
      skipWs();
      const paramStart = i;
      const name = readToken();
      if (name === '') break;
      skipWs();
      if (s[i] !== '=') {
        // a token not followed by '=' starts the next challenge
        i = paramStart;
        break;
      }
      i++; // '='
      skipWs();
      const value = s[i] === '"' ? readQuoted() : readToken();
      challenge.params[name.toLowerCase()] = value;
      skipWs();
      if (s[i] === ',') {
        i++;
        continue;
      }
      if (i < s.length) {
        // unexpected character: resynchronise at the next comma
        while (i < s.length && s[i] !== ',') i++;
      }
      if (i >= s.length) break;
    }
  }
  return challenges;
}
