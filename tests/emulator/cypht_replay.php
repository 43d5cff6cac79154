<?php
// The HTTP requests of Cypht's Outlook / Office365 "Enable" button, made the way Cypht makes them
// (shared/reference/cypht.md §1.2, §3.1): the .env loaded with symfony/dotenv (real environment
// variables win), env() falling back to Cypht's default on an empty value, the authorize URL
// formatted without URL-encoding (HTML-escaped into an href, so a browser decodes &amp;), the
// token POST with urlencode()d fields through curl, user agent "hm3". The CA comes from
// php.ini's curl.cainfo (php -d curl.cainfo=...), as an admin would configure it.
//
//   php cypht_replay.php authorize ENV_FILE outlook|office365 EMAIL [SCOPE]
//   php cypht_replay.php token     ENV_FILE outlook|office365 CODE
//   php cypht_replay.php refresh   ENV_FILE outlook|office365 REFRESH_TOKEN
// prints {"url", "status", "location", "body"} as JSON.

require '/usr/share/php/Symfony/Component/Dotenv/autoload.php';

[, $step, $env_file, $provider, $arg] = $argv;
$scope = $argv[5] ?? 'wl.imap';  // hard-coded in Cypht's modules/nux/services.php

$dotenv = new \Symfony\Component\Dotenv\Dotenv();
$dotenv->usePutenv(true);
$dotenv->load($env_file);

function setting(string $key, string $default): string {
    return getenv($key) ?: $default;
}

$p = strtoupper($provider);
$live_authorize = 'https://login.live.com/oauth20_authorize.srf';
$live_token = 'https://login.live.com/oauth20_token.srf';
$client_id = setting("{$p}_CLIENT_ID", '');
$client_secret = setting("{$p}_CLIENT_SECRET", '');
$client_uri = setting("{$p}_CLIENT_URI", 'http://localhost/?page=home');
$auth_uri = setting("{$p}_AUTH_URI", $live_authorize);
$token_uri = setting("{$p}_TOKEN_URI", $live_token);
$refresh_uri = setting("{$p}_REFRESH_URI", $live_token);

function send(string $url, array $fields): array {
    $ch = curl_init();
    curl_setopt($ch, CURLOPT_URL, $url);
    curl_setopt($ch, CURLOPT_USERAGENT, 'hm3');
    curl_setopt($ch, CURLOPT_HTTPHEADER, []);
    curl_setopt($ch, CURLOPT_RETURNTRANSFER, 1);
    if ($fields) {
        $pairs = [];
        foreach ($fields as $name => $value) {
            $pairs[] = urlencode($name) . '=' . urlencode($value);
        }
        curl_setopt($ch, CURLOPT_POST, true);
        curl_setopt($ch, CURLOPT_POSTFIELDS, implode('&', $pairs));
    }
    $body = curl_exec($ch);
    if ($body === false) {
        fwrite(STDERR, 'curl: ' . curl_error($ch) . "\n");
        exit(3);
    }
    return ['url' => $url, 'status' => curl_getinfo($ch, CURLINFO_RESPONSE_CODE),
            'location' => curl_getinfo($ch, CURLINFO_REDIRECT_URL) ?: null, 'body' => $body];
}

if ($step === 'authorize') {
    $href = sprintf('%s?response_type=code&amp;scope=%s&amp;state=%s&amp;approval_prompt=force&amp;'
        . 'access_type=offline&amp;client_id=%s&amp;redirect_uri=%s', $auth_uri, $scope, 'nux_authorization',
        $client_id, $client_uri) . '&amp;login_hint=' . $arg;
    // The browser follows the link: it decodes the HTML entities and escapes spaces (none in Cypht's scope).
    $result = send(str_replace(' ', '%20', html_entity_decode($href)), []);
} elseif ($step === 'token') {
    $result = send($token_uri, ['code' => $arg, 'client_id' => $client_id, 'client_secret' => $client_secret,
        'redirect_uri' => $client_uri, 'grant_type' => 'authorization_code']);
} elseif ($step === 'refresh') {
    $result = send($refresh_uri, ['client_id' => $client_id, 'client_secret' => $client_secret,
        'refresh_token' => $arg, 'grant_type' => 'refresh_token']);
} else {
    fwrite(STDERR, "unknown step $step\n");
    exit(2);
}
echo json_encode($result);
