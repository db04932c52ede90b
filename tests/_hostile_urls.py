"""Hostile certificate and SubscribeURLs, shared by the policy table (tests/test_policy.py),
the end-to-end hostile table (tests/test_hostile.py) and the property tests."""

from __future__ import annotations

import pytest

from ._vector_helpers import SUBSCRIPTION_VECTOR, vector_fields

TOPIC = "arn:aws:sns:us-east-1:123456789012:budget-alerts"
HOST = "sns.us-east-1.amazonaws.com"
HEX = "7ff5318490ec183fbaddaa2a969abfda"
CERT_URL = f"https://{HOST}/SimpleNotificationService-{HEX}.pem"

CERT_PATH = f"/SimpleNotificationService-{HEX}.pem"

HOSTILE_CERT_URLS = [
    pytest.param(f"http://{HOST}{CERT_PATH}", id="http"),
    pytest.param(f"HTTPS://{HOST}{CERT_PATH}", id="upper-scheme"),
    pytest.param(f"https:/{HOST}{CERT_PATH}", id="one-slash"),
    pytest.param(f"https:///{HOST}{CERT_PATH}", id="three-slashes"),
    pytest.param(f"//{HOST}{CERT_PATH}", id="scheme-relative"),
    pytest.param(f"https://{HOST}.evil.example{CERT_PATH}", id="lookalike-suffix"),
    pytest.param(f"https://{HOST}.{CERT_PATH}", id="trailing-dot-host"),
    pytest.param(f"https://evil.example/{HOST}{CERT_PATH}", id="host-in-path"),
    pytest.param(f"https://sns-us-east-1.amazonaws.com{CERT_PATH}", id="dash-for-dot"),
    pytest.param(f"https://snsxus-east-1.amazonaws.com{CERT_PATH}", id="x-for-dot"),
    pytest.param(f"https://sns.us-east-1.amazonaws.co{CERT_PATH}", id="co-tld"),
    pytest.param(f"https://sns.us-east-1.amazonaws.com.cn{CERT_PATH}", id="other-partition-cn"),
    pytest.param(f"https://sns.us-west-2.amazonaws.com{CERT_PATH}", id="other-region"),
    pytest.param(f"https://sns.amazonaws.com{CERT_PATH}", id="global-host"),
    pytest.param(f"https://sns.s3.amazonaws.com{CERT_PATH}", id="s3-bucket-sns"),
    pytest.param(f"https://sns.s3.us-east-1.amazonaws.com{CERT_PATH}", id="s3-regional-bucket"),
    pytest.param(f"https://s3.amazonaws.com/sns.us-east-1.amazonaws.com{CERT_PATH}", id="s3-path"),
    pytest.param(f"https://{HOST}.s3.amazonaws.com{CERT_PATH}", id="s3-bucket-named-host"),
    pytest.param(f"https://sns.us-east-1.amazonaws.com.s3.amazonaws.com{CERT_PATH}", id="s3-sub"),
    pytest.param(f"https://evil.example@{HOST}{CERT_PATH}", id="userinfo"),
    pytest.param(f"https://{HOST}@evil.example{CERT_PATH}", id="host-as-userinfo"),
    pytest.param(f"https://{HOST}:443{CERT_PATH}", id="default-port"),
    pytest.param(f"https://{HOST}:8443{CERT_PATH}", id="other-port"),
    pytest.param(f"https://{HOST}:{CERT_PATH}", id="empty-port"),
    pytest.param(f"https://{HOST}{CERT_PATH}?x=1", id="query"),
    pytest.param(f"https://{HOST}{CERT_PATH}?", id="empty-query"),
    pytest.param(f"https://{HOST}{CERT_PATH}#x", id="fragment"),
    pytest.param(f"https://{HOST}{CERT_PATH}#", id="empty-fragment"),
    pytest.param(f"https://{HOST}/SimpleNotificationService-{HEX[:-1]}%61.pem", id="pct-hex"),
    pytest.param(f"https://{HOST}/%53impleNotificationService-{HEX}.pem", id="pct-name"),
    pytest.param(f"https://{HOST}/%2e%2e{CERT_PATH}", id="pct-2e-dots"),
    pytest.param(f"https://{HOST}/%2E%2E{CERT_PATH}", id="pct-2E-dots"),
    pytest.param(f"https://{HOST}/SimpleNotificationService-{HEX}%2epem", id="pct-2e-ext"),
    pytest.param(f"https://sns.us-east-1.amazonaws%2ecom{CERT_PATH}", id="pct-in-host"),
    pytest.param(f"https://{HOST}%2f{CERT_PATH}", id="pct-slash-host"),
    pytest.param(f"https://{HOST}/../SimpleNotificationService-{HEX}.pem", id="dotdot"),
    pytest.param(f"https://{HOST}/x/../SimpleNotificationService-{HEX}.pem", id="x-dotdot"),
    pytest.param(f"https://{HOST}/./SimpleNotificationService-{HEX}.pem", id="dot-segment"),
    pytest.param(f"https://{HOST}//SimpleNotificationService-{HEX}.pem", id="double-slash"),
    pytest.param(f"https://{HOST}/a{CERT_PATH}", id="subdirectory"),
    pytest.param(f"https://{HOST}{CERT_PATH}/", id="trailing-slash"),
    pytest.param(f"https://{HOST}\\{CERT_PATH[1:]}", id="backslash-path"),
    pytest.param(f"https://{HOST}\\@evil.example{CERT_PATH}", id="backslash-userinfo"),
    pytest.param(f"https://{HOST};x{CERT_PATH}", id="semicolon"),
    pytest.param(f"https://SNS.us-east-1.amazonaws.com{CERT_PATH}", id="upper-host"),
    pytest.param(f"https://sns.US-EAST-1.amazonaws.com{CERT_PATH}", id="upper-region"),
    pytest.param(f"https://sns.us-east-1.AMAZONAWS.COM{CERT_PATH}", id="upper-domain"),
    pytest.param(f"https://sns.us-east-1.\u0430mazonaws.com{CERT_PATH}", id="cyrillic-a"),
    pytest.param(f"https://sns.us-east-1.amazonaws\uff0ecom{CERT_PATH}", id="fullwidth-dot"),
    pytest.param(f"https://sns.us-east-1.amazonaws.com\u3002{CERT_PATH}", id="ideographic-dot"),
    pytest.param(f"https://{HOST}/SimpleNotificationService-{HEX.upper()}.pem", id="upper-hex"),
    pytest.param(f"https://{HOST}/SimpleNotificationService-.pem", id="empty-hex"),
    pytest.param(f"https://{HOST}/SimpleNotificationService-{'a' * 65}.pem", id="65-hex"),
    pytest.param(f"https://{HOST}/SimpleNotificationService-xyz.pem", id="non-hex"),
    pytest.param(f"https://{HOST}/SimpleNotificationService-{HEX}.PEM", id="upper-ext"),
    pytest.param(f"https://{HOST}/SimpleNotificationService-{HEX}.pem.exe", id="double-ext"),
    pytest.param(f"https://{HOST}/SimpleNotificationService-{HEX}.crt", id="other-ext"),
    pytest.param(f"https://{HOST}/simplenotificationservice-{HEX}.pem", id="lower-name"),
    pytest.param(f"https://{HOST}/SimpleNotificationService{HEX}.pem", id="no-dash"),
    pytest.param(f"https://{HOST}/", id="no-file"),
    pytest.param(f"https://{HOST}", id="no-path"),
    pytest.param(f"{CERT_URL}\n", id="trailing-newline"),
    pytest.param(f"{CERT_URL}\r\n", id="trailing-crlf"),
    pytest.param(f"{CERT_URL} ", id="trailing-space"),
    pytest.param(f"{CERT_URL}\x00", id="trailing-nul"),
    pytest.param(f"{CERT_URL}\t", id="trailing-tab"),
    pytest.param(f" {CERT_URL}", id="leading-space"),
    pytest.param(f"\n{CERT_URL}", id="leading-newline"),
    pytest.param(CERT_URL.replace("https://", "https://\x00"), id="nul-in-authority"),
    pytest.param(CERT_URL.replace("Service-", "Service-\n"), id="newline-in-path"),
    pytest.param(CERT_URL.replace("Service-", "Service-\u200b"), id="zero-width-space"),
    pytest.param(f"https://[::1]{CERT_PATH}", id="ipv6"),
    pytest.param(f"https://127.0.0.1{CERT_PATH}", id="ip"),
    pytest.param(f"file://{HOST}{CERT_PATH}", id="file-scheme"),
    pytest.param("", id="empty"),
]

# The real SubscriptionConfirmation vector's topic, token and SubscribeURL.
VECTOR = vector_fields(SUBSCRIPTION_VECTOR)
V_TOPIC_ARN: str = VECTOR["TopicArn"]
V_TOKEN: str = VECTOR["Token"]
V_URL: str = VECTOR["SubscribeURL"]
V_QUERY = V_URL.split("?", 1)[1]

OTHER_ARN = "arn:aws:sns:us-east-1:820710015775:OtherTopic"

HOSTILE_SUBSCRIBE_URLS = [
    pytest.param(f"https://evil.example/?{V_QUERY}", id="other-host"),
    pytest.param(f"https://sns.us-east-1.amazonaws.com.evil.example/?{V_QUERY}", id="lookalike"),
    pytest.param(f"https://sns.us-west-2.amazonaws.com/?{V_QUERY}", id="other-region"),
    pytest.param(f"https://sns.us-east-1.amazonaws.com.cn/?{V_QUERY}", id="other-partition"),
    pytest.param(f"https://sns.s3.amazonaws.com/?{V_QUERY}", id="s3-bucket"),
    pytest.param(f"http://sns.us-east-1.amazonaws.com/?{V_QUERY}", id="http"),
    pytest.param(f"https://sns.us-east-1.amazonaws.com:443/?{V_QUERY}", id="port"),
    pytest.param(f"https://user@sns.us-east-1.amazonaws.com/?{V_QUERY}", id="userinfo"),
    pytest.param(
        f"https://sns.us-east-1.amazonaws.com@evil.example/?{V_QUERY}", id="host-userinfo"
    ),
    pytest.param(f"https://SNS.us-east-1.amazonaws.com/?{V_QUERY}", id="upper-host"),
    pytest.param(f"https://sns.us-east-1.amazonaws.com?{V_QUERY}", id="no-slash"),
    pytest.param(f"https://sns.us-east-1.amazonaws.com/x?{V_QUERY}", id="other-path"),
    pytest.param(f"https://sns.us-east-1.amazonaws.com//?{V_QUERY}", id="double-slash"),
    pytest.param(f"https://sns.us-east-1.amazonaws.com/%3F{V_QUERY}", id="encoded-question"),
    pytest.param("https://sns.us-east-1.amazonaws.com/", id="no-query"),
    pytest.param("https://sns.us-east-1.amazonaws.com/?", id="empty-query"),
    pytest.param(f"https://sns.us-east-1.amazonaws.com/?{V_QUERY}#x", id="fragment"),
    pytest.param(f"https://sns.us-east-1.amazonaws.com/?{V_QUERY}&x=1", id="extra-param"),
    pytest.param(
        f"https://sns.us-east-1.amazonaws.com/?{V_QUERY}&AuthenticateOnUnsubscribe=false",
        id="extra-known-param",
    ),
    pytest.param(f"https://sns.us-east-1.amazonaws.com/?{V_QUERY}&Token={V_TOKEN}", id="dup-token"),
    pytest.param(
        f"https://sns.us-east-1.amazonaws.com/?{V_QUERY}&Action=ConfirmSubscription",
        id="dup-action",
    ),
    pytest.param(
        f"https://sns.us-east-1.amazonaws.com/?{V_QUERY}&TopicArn={V_TOPIC_ARN}", id="dup-topic"
    ),
    pytest.param(
        f"https://sns.us-east-1.amazonaws.com/?{V_QUERY}&Action=Unsubscribe", id="dup-other-action"
    ),
    pytest.param(
        "https://sns.us-east-1.amazonaws.com/?"
        + V_QUERY.replace("ConfirmSubscription", "Unsubscribe"),
        id="other-action",
    ),
    pytest.param(
        f"https://sns.us-east-1.amazonaws.com/?{V_QUERY.replace('Action=', 'action=')}",
        id="lower-action-name",
    ),
    pytest.param(
        "https://sns.us-east-1.amazonaws.com/?"
        + V_QUERY.replace("ConfirmSubscription", "confirmsubscription"),
        id="lower-action-value",
    ),
    pytest.param(
        "https://sns.us-east-1.amazonaws.com/?"
        + V_QUERY.replace("Action=ConfirmSubscription&", ""),
        id="no-action",
    ),
    pytest.param(
        f"https://sns.us-east-1.amazonaws.com/?{V_QUERY.replace(V_TOPIC_ARN, OTHER_ARN)}",
        id="other-topic",
    ),
    pytest.param(
        f"https://sns.us-east-1.amazonaws.com/?{V_QUERY.replace(f'TopicArn={V_TOPIC_ARN}&', '')}",
        id="no-topic",
    ),
    pytest.param(
        f"https://sns.us-east-1.amazonaws.com/?{V_QUERY.replace(V_TOKEN, V_TOKEN[:-1] + 'e')}",
        id="other-token",
    ),
    pytest.param(
        f"https://sns.us-east-1.amazonaws.com/?{V_QUERY.replace(V_TOKEN, V_TOKEN + '0')}",
        id="longer-token",
    ),
    pytest.param(
        f"https://sns.us-east-1.amazonaws.com/?{V_QUERY.replace(f'&Token={V_TOKEN}', '')}",
        id="no-token",
    ),
    pytest.param(
        f"https://sns.us-east-1.amazonaws.com/?{V_QUERY.replace(V_TOKEN, '')}", id="empty-token"
    ),
    pytest.param(
        f"https://sns.us-east-1.amazonaws.com/?{V_QUERY.replace('Token=', 'token=')}",
        id="lower-token-name",
    ),
    pytest.param(
        f"https://sns.us-east-1.amazonaws.com/?{V_QUERY.replace('&', ';')}",
        id="semicolon-separator",
    ),
    pytest.param(f"https://sns.us-east-1.amazonaws.com/?{V_QUERY}&", id="trailing-ampersand"),
    pytest.param(
        f"https://sns.us-east-1.amazonaws.com/?{V_QUERY.replace('&', '&&', 1)}", id="empty-field"
    ),
    pytest.param(f"https://sns.us-east-1.amazonaws.com/?{V_QUERY}&Action", id="bare-name"),
    pytest.param(f"https://sns.us-east-1.amazonaws.com/?{V_QUERY}\n", id="trailing-newline"),
    pytest.param(f"https://sns.us-east-1.amazonaws.com/?{V_QUERY} ", id="trailing-space"),
    pytest.param(f"https://sns.us-east-1.amazonaws.com/?{V_QUERY}\x00", id="trailing-nul"),
    pytest.param(f" https://sns.us-east-1.amazonaws.com/?{V_QUERY}", id="leading-space"),
    pytest.param(f"https://sns.us-east-1.amazonaws.com/?{V_QUERY}@evil.example", id="at-in-query"),
    pytest.param(f"https://sns.us-east-1.amazonaws.com\\?{V_QUERY}", id="backslash"),
    pytest.param(
        f"https://sns.us-east-1.amazonaws.com/?{V_QUERY}" + "&x=" + "a" * 5000, id="overlong-query"
    ),
]

# --- console links in Cost Anomaly Detection alerts (snsmiddleware.anomaly) ----------------

CONSOLE = "https://console.aws.amazon.com"
ANOMALY_PAGE = "/cost-management/home#/anomaly-detection/monitors/m-1/anomalies/a-1"

GENUINE_CONSOLE_URLS = [
    pytest.param(f"{CONSOLE}{ANOMALY_PAGE}", id="commercial"),
    pytest.param(f"https://us-east-1.console.aws.amazon.com{ANOMALY_PAGE}", id="commercial-home"),
    pytest.param(f"https://console.amazonaws.cn{ANOMALY_PAGE}", id="china"),
    pytest.param(f"https://cn-northwest-1.console.amazonaws.cn{ANOMALY_PAGE}", id="china-home"),
    pytest.param(f"https://console.amazonaws-us-gov.com{ANOMALY_PAGE}", id="govcloud"),
    pytest.param(
        f"https://us-gov-west-1.console.amazonaws-us-gov.com{ANOMALY_PAGE}", id="govcloud-home"
    ),
    pytest.param(f"{CONSOLE}/costmanagement/home#/anomaly-detection", id="costmanagement"),
    pytest.param(f"{CONSOLE}/cost-management/home", id="no-fragment"),
    pytest.param(f"{CONSOLE}/cost-management/home?region=us-east-1#/x", id="plain-query"),
    pytest.param(f"{CONSOLE}/cost-management/home#/anomaly-detection/monitors/", id="cut-short"),
]

HOSTILE_CONSOLE_URLS = [
    pytest.param(f"http://console.aws.amazon.com{ANOMALY_PAGE}", id="http"),
    pytest.param(f"HTTPS://console.aws.amazon.com{ANOMALY_PAGE}", id="upper-scheme"),
    pytest.param(f"javascript:alert(1)//{CONSOLE}{ANOMALY_PAGE}", id="javascript"),
    pytest.param(f"data:text/html,{CONSOLE}{ANOMALY_PAGE}", id="data"),
    pytest.param(f"//console.aws.amazon.com{ANOMALY_PAGE}", id="scheme-relative"),
    pytest.param(f"https:/console.aws.amazon.com{ANOMALY_PAGE}", id="one-slash"),
    pytest.param(f"https:///console.aws.amazon.com{ANOMALY_PAGE}", id="three-slashes"),
    pytest.param(f"https://console.aws.amazon.com.evil.example{ANOMALY_PAGE}", id="suffix"),
    pytest.param(f"https://evil.example/console.aws.amazon.com{ANOMALY_PAGE}", id="host-in-path"),
    pytest.param(f"https://console.aws.amazon.com.{ANOMALY_PAGE}", id="trailing-dot"),
    pytest.param(f"https://CONSOLE.aws.amazon.com{ANOMALY_PAGE}", id="upper-host"),
    pytest.param(f"https://evil.console.aws.amazon.com{ANOMALY_PAGE}", id="other-subdomain"),
    pytest.param(f"https://eu-west-1.console.aws.amazon.com{ANOMALY_PAGE}", id="other-region"),
    pytest.param(f"https://consoleaws.amazon.com{ANOMALY_PAGE}", id="missing-dot"),
    pytest.param(f"https://console-aws.amazon.com{ANOMALY_PAGE}", id="dash-for-dot"),
    pytest.param(f"https://console.aws.amazon.co{ANOMALY_PAGE}", id="co-tld"),
    pytest.param(f"https://signin.aws.amazon.com{ANOMALY_PAGE}", id="other-aws-host"),
    pytest.param(f"https://s3.amazonaws.com/console.aws.amazon.com{ANOMALY_PAGE}", id="s3-path"),
    pytest.param(f"https://console.aws.amazon.com.s3.amazonaws.com{ANOMALY_PAGE}", id="s3-bucket"),
    pytest.param(f"https://evil.example@console.aws.amazon.com{ANOMALY_PAGE}", id="userinfo"),
    pytest.param(f"https://console.aws.amazon.com@evil.example{ANOMALY_PAGE}", id="host-as-user"),
    pytest.param(f"https://console.aws.amazon.com:443{ANOMALY_PAGE}", id="default-port"),
    pytest.param(f"https://console.aws.amazon.com:8443{ANOMALY_PAGE}", id="other-port"),
    pytest.param(f"https://console.aws.amazon.com:{ANOMALY_PAGE}", id="empty-port"),
    pytest.param(f"https://[::1]{ANOMALY_PAGE}", id="ipv6"),
    pytest.param(f"https://127.0.0.1{ANOMALY_PAGE}", id="ip"),
    pytest.param(f"https://console.aws.\u0430mazon.com{ANOMALY_PAGE}", id="cyrillic-a"),
    pytest.param(f"https://console.aws.amazon\uff0ecom{ANOMALY_PAGE}", id="fullwidth-dot"),
    pytest.param(f"https://xn--console-9za.aws.amazon.com{ANOMALY_PAGE}", id="punycode"),
    pytest.param(f"{CONSOLE}/billing/home#/budgets", id="other-console-app"),
    pytest.param(f"{CONSOLE}/iam/home#/users", id="iam"),
    pytest.param(f"{CONSOLE}/", id="root-path"),
    pytest.param(CONSOLE, id="no-path"),
    pytest.param(f"{CONSOLE}/cost-management/../iam/home", id="dot-dot"),
    pytest.param(f"{CONSOLE}/cost-management/./home", id="dot-segment"),
    pytest.param(f"{CONSOLE}//cost-management/home", id="double-slash"),
    pytest.param(f"{CONSOLE}/cost-management//home", id="inner-double-slash"),
    pytest.param(f"{CONSOLE}/cost-management/home/", id="trailing-slash"),
    pytest.param(f"{CONSOLE}/%63ost-management/home", id="pct-encoded"),
    pytest.param(f"{CONSOLE}/cost-management/%2e%2e/iam", id="pct-dots"),
    pytest.param(f"{CONSOLE}/cost-management/home#/x%0d%0a", id="pct-crlf-fragment"),
    pytest.param(f"{CONSOLE}\\cost-management\\home", id="backslash"),
    pytest.param(f"{CONSOLE}/cost-management\\@evil.example/home", id="backslash-userinfo"),
    pytest.param(f"{CONSOLE}/cost-management/home#/x@evil.example", id="at-in-fragment"),
    pytest.param(f'{CONSOLE}/cost-management/home#"><script>alert(1)</script>', id="html"),
    pytest.param(f"{CONSOLE}/cost-management/home#/a b", id="space"),
    pytest.param(f"{CONSOLE}{ANOMALY_PAGE}\n", id="trailing-newline"),
    pytest.param(f"{CONSOLE}{ANOMALY_PAGE}\r\nBcc: x@evil.example", id="crlf-header"),
    pytest.param(f" {CONSOLE}{ANOMALY_PAGE}", id="leading-space"),
    pytest.param(f"{CONSOLE}{ANOMALY_PAGE}\x00", id="nul"),
    pytest.param(f"{CONSOLE}{ANOMALY_PAGE}\t", id="tab"),
    pytest.param(f"https://console.aws.amazon.com\t{ANOMALY_PAGE}", id="tab-after-host"),
    pytest.param(f"{CONSOLE}/cost-management/home#/\u202eevil", id="bidi"),
    pytest.param(f"{CONSOLE}/cost-management/home#/\u200b", id="zero-width"),
    pytest.param(f"{CONSOLE}/cost-management/home#/" + "a" * 3000, id="overlong"),
    pytest.param(f"{CONSOLE}/cost-management/home#a#b", id="two-fragments"),
    pytest.param(f"{CONSOLE}/cost-management/home?x=<y>", id="angle-query"),
    pytest.param(f"file://console.aws.amazon.com{ANOMALY_PAGE}", id="file-scheme"),
    pytest.param("", id="empty"),
    pytest.param(None, id="null"),
    pytest.param(42, id="number"),
    pytest.param([f"{CONSOLE}{ANOMALY_PAGE}"], id="list"),
]
