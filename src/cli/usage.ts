export const USAGE = `usage: keygate <command> [options]

  serve                                        run the proxy
  config check [FILE]                          validate a config file and exit
  accounts create NAME --role ROLE [--description TEXT] [--rate-limit 100/1m]
                       [--filter KIND=EXPR]...
  accounts list
  accounts show NAME                           the account, its filters and its keys
  accounts update NAME [--role ROLE] [--description TEXT] [--disable | --enable]
                       [--rate-limit 100/1m | --rate-limit none]
                                               the account's own quota (N/duration) over its
                                               role's default; none: the default again
                  [--filter KIND=EXPR]... [--clear-filters]
                                               --filter sets the account's Kubecost filter (v2) for
                                               KIND (allocation, assets, cloudCost), KIND= removes it;
                                               e.g. --filter allocation='namespace:"team-a"'
  accounts delete NAME                         deletes the account and all its keys
  keys create ACCOUNT [--description TEXT] [--expires-in 90d | --expires-at TIME] [--scopes a,b]
  keys list ACCOUNT
  keys list [ACCOUNT] --expiring 7d            keys that still work and expire within 7d (all accounts)
  keys revoke ACCOUNT KEY_ID
  keys rotate ACCOUNT KEY_ID [--grace 24h]     new key now, old key works until the grace ends
  keys mint ACCOUNT --offline [--description TEXT] [--expires-in 90d | --expires-at TIME] [--scopes a,b]
                                               a key on stdout, its record (hash only) as YAML on stderr;
                                               touches no store
  apply -f FILE [--dry-run] [--prune]          make the store match an accounts file (DESIGN §14)
  version                                      print the version

Every command takes --config FILE (default: $KEYGATE_CONFIG or config/keygate.yaml) and honours
the KEYGATE_* environment overrides. Without --json, "keys create" and "keys rotate" print the key
alone on stdout and everything else on stderr. With --json every command prints one JSON object on
stdout (create and rotate: the key with its metadata), and an error is one JSON object on stderr:
{"error": CODE, "message": TEXT}.
Exit codes: 0 ok, 1 failure, 2 bad usage or config.

Remote mode: accounts and keys commands act on a running keygate's admin API instead of the
store, with the same output and exit codes, when given a URL and an admin API key:
  --url URL          or KEYGATE_URL          (http or https; no user info, query or fragment)
  --api-key-file F   or KEYGATE_API_KEY_FILE (the key alone in a file)
  --api-key KEY      or KEYGATE_API_KEY      (--api-key is visible to others in ps: prefer a file)
  --cli-config FILE  YAML {url, api_key | api_key_file}; a relative api_key_file is beside FILE
Each setting is taken from the flag, else the environment, else the --cli-config file. Remote mode
reads no --config and opens no store; redirects are not followed.`;
