"""Why a recipient bounced, in words an operator understands: one of REASONS.

The server's text decides first, since the same code means many things (5.7.1 is a spam
block at one provider and a relay refusal at the next); the enhanced status code (RFC 3463)
decides when no phrase is known; the reply code's class is the last resort."""

from __future__ import annotations

import re

from mailport.mail.receipts import providers

REASONS = (
    "userunknown",
    "mailboxfull",
    "hostunknown",
    "filtered",
    "rejected",
    "blocked",
    "spamdetected",
    "virusdetected",
    "policyviolation",
    "securityerror",
    "authfailure",
    "expired",
    "networkerror",
    "systemerror",
    "systemfull",
    "mesgtoobig",
    "exceedlimit",
    "toomanyconn",
    "speeding",
    "suspend",
    "hasmoved",
    "notaccept",
    "norelaying",
    "syntaxerror",
    "contenterror",
    "mailererror",
    "onhold",
    "requireptr",
    "notcompliantrfc",
    "failedstarttls",
    "badreputation",
    "delivered",
    "undefined",
)

_HARD = {"userunknown", "hostunknown", "hasmoved"}

# Enhanced status codes whose meaning is one reason wherever they come from.
_BY_STATUS = {
    "1.1": "userunknown",
    "1.2": "hostunknown",
    "1.3": "userunknown",
    "1.4": "userunknown",
    "1.6": "hasmoved",
    "1.7": "rejected",
    "1.8": "rejected",
    "1.10": "notaccept",
    "2.1": "suspend",
    "2.2": "mailboxfull",
    "2.3": "exceedlimit",
    "2.4": "systemerror",
    "3.1": "systemfull",
    "3.2": "notaccept",
    "3.3": "systemerror",
    "3.4": "mesgtoobig",
    "3.5": "systemerror",
    "4.1": "networkerror",
    "4.2": "networkerror",
    "4.3": "systemerror",
    "4.4": "hostunknown",
    "4.5": "systemfull",
    "4.6": "networkerror",
    "4.7": "expired",
    "5.3": "exceedlimit",
    "5.4": "syntaxerror",
    "5.5": "syntaxerror",
    "6.0": "contenterror",
    "6.1": "contenterror",
    "6.2": "contenterror",
    "6.3": "contenterror",
    "6.4": "contenterror",
    "6.5": "contenterror",
    "7.2": "policyviolation",
    "7.3": "securityerror",
    "7.4": "securityerror",
    "7.5": "securityerror",
    "7.6": "securityerror",
    "7.7": "securityerror",
    "7.8": "securityerror",
    "7.9": "securityerror",
    "7.10": "failedstarttls",
    "7.11": "failedstarttls",
    "7.12": "securityerror",
    "7.13": "suspend",
    "7.14": "securityerror",
    "7.15": "securityerror",
    "7.16": "securityerror",
    "7.17": "hasmoved",
    "7.18": "hasmoved",
    "7.19": "hasmoved",
    "7.20": "authfailure",
    "7.21": "authfailure",
    "7.22": "authfailure",
    "7.23": "authfailure",
    "7.24": "authfailure",
    "7.25": "requireptr",
    "7.26": "authfailure",
    "7.27": "notaccept",
    "7.28": "spamdetected",
    "7.29": "authfailure",
    "7.30": "securityerror",
}

# Phrases, in the order they are tried: the more specific a reason, the earlier it comes.
# Each list was written from the wording MTAs and providers use in their refusals.
_PHRASES: list[tuple[str, tuple[str, ...]]] = [
    (
        "virusdetected",
        (
            r"virus",
            r"malware",
            r"infected",
            r"banned attachment",
            r"message contains an? (?:unsafe|dangerous)",
        ),
    ),
    (
        "requireptr",
        (
            r"reverse dns",
            r"\bptr\b",
            r"rdns",
            r"no (?:reverse|ptr) (?:dns|record|lookup)",
            r"cannot find your hostname",
            r"client host name (?:is )?(?:unknown|not found)",
            r"reverse (?:lookup|hostname)",
            r"not resolve to your ip",
            r"does not have reverse",
            r"hostname .* does not resolve",
            r"unresolvable (?:sender|client) host",
            r"ip name lookup failed",
            r"mismatches client ip",
        ),
    ),
    (
        "authfailure",
        (
            r"\bspf\b",
            r"\bdkim\b",
            r"\bdmarc\b",
            r"sender policy framework",
            r"not (?:an )?authorized (?:to send|sender|mail server)",
            r"domain authentication",
        ),
    ),
    (
        "failedstarttls",
        (
            r"does not support tls",
            r"starttls",
            r"must issue a starttls",
            r"tls (?:is )?required",
            r"encryption required",
            r"requires? (?:a )?secure connection",
        ),
    ),
    (
        "badreputation",
        (
            r"ip reputation",
            r"bad reputation",
            r"poor reputation",
            r"low reputation",
            r"reputation (?:of|is)",
        ),
    ),
    (
        "toomanyconn",
        (
            r"too many (?:concurrent |simultaneous )?(?:connections|sessions)",
            r"connection (?:limit|rate limit)",
            r"too many hosts",
            r"maximum (?:number of )?connections",
            r"frequency limited",
        ),
    ),
    (
        "speeding",
        (
            r"rate limit(?:ed|ing)?",
            r"too many (?:messages|emails|mails) (?:from|sent|in)",
            r"sending (?:rate|limit)",
            r"exceeded (?:the )?(?:rate|sending)",
            r"try(?:ing)? to send too (?:much|fast)",
            r"throttl",
            r"unusual rate",
            r"sent to too many recipients",
        ),
    ),
    (
        "spamdetected",
        (
            r"\bspam\b",
            r"\bspamhaus\b.*content",
            r"junk mail",
            r"bulk mail",
            r"unsolicited",
            r"message (?:content )?(?:was )?(?:rejected|blocked|refused) as spam",
            r"classified as (?:spam|bulk)",
            r"scored? (?:too )?high",
            r"content (?:filter|rejected)",
            r"looks like spam",
            r"suspicious",
            r"phish",
            r"blacklisted url",
            r"url (?:is )?(?:black|block)listed",
        ),
    ),
    (
        "mesgtoobig",
        (
            r"message (?:is )?too (?:big|large|long)",
            r"(?:message|mail) size exceeds",
            r"size (?:limit )?exceeded",
            r"exceeds (?:the )?(?:maximum |message )?size",
            r"message (?:length|size) (?:exceeds|is over)",
            r"too big for",
            r"message file too big",
            r"over the server's size limit",
            r"line limit exceeded",
        ),
    ),
    (
        "exceedlimit",
        (
            r"message (?:header )?(?:length )?exceeds (?:the )?(?:local )?limit",
            r"exceeds? (?:the )?(?:administrative|local) limit",
            r"too many recipients",
            r"line too long",
            r"header (?:too long|size exceeds)",
        ),
    ),
    (
        "mailboxfull",
        (
            r"mailbox (?:is )?full",
            r"mail ?box (?:size )?(?:is )?(?:over ?quota|full)",
            r"over ?quota",
            r"quota (?:exceeded|full|violation)",
            r"exceed(?:s|ed)? (?:the |his |her |their )?(?:mailbox |storage |disk )?quota",
            r"insufficient (?:disk )?space",
            r"(?:mailbox|inbox) (?:has )?(?:exceeded|reached)",
            r"not enough (?:storage|space)",
            r"out of (?:storage|space)",
            r"user(?:'s)? (?:mailbox|disk) (?:is )?(?:full|quota)",
            r"storage (?:limit|quota|full)",
            r"mailfolder is full",
            r"maildir over quota",
            r"would exceed",
            r"full mailbox",
            r"too many messages in (?:this|the) mailbox",
            r"mailbox exceeds allowed size",
            r"exceeds allowed size",
        ),
    ),
    (
        "suspend",
        (
            r"(?:account|mailbox|user) (?:is |has been )?"
            r"(?:disabled|suspended|inactive|deactivated|frozen|locked|expired|blocked)",
            r"(?:disabled|suspended|inactive|deactivated|expired) (?:account|mailbox|user)",
            r"not (?:an )?active",
            r"temporarily (?:disabled|unavailable) mailbox",
            r"recipient (?:is )?(?:suspended|disabled)",
            r"mailbox (?:is )?(?:currently )?inactive",
            r"account has been (?:closed|terminated)",
        ),
    ),
    (
        "hasmoved",
        (
            r"has (?:been )?moved",
            r"no longer (?:with|at|valid|in use|available)",
            r"address (?:has )?changed",
            r"user has moved",
        ),
    ),
    (
        "notaccept",
        (
            r"does not accept (?:e?-?mail|messages)",
            r"no longer accepts? mail",
            r"not accepting (?:any )?(?:mail|messages)",
            r"null mx",
            r"indicated no smtp service",
            r"couldn't find a mail exchanger",
            r"no mx record",
        ),
    ),
    (
        "hostunknown",
        (
            r"host (?:or domain name )?(?:not found|unknown)",
            r"unknown (?:host|domain)",
            r"domain (?:not found|does not exist|unknown|name not found|lookup failed)",
            r"no (?:such|mx) (?:host|domain|record)",
            r"name or service not known",
            r"host not found",
            r"unrouteable (?:mail )?domain",
            r"(?:nxdomain|servfail)",
            r"no mail exchanger",
            r"domain (?:is )?(?:invalid|not (?:valid|exist))",
            r"null mx",
            r"domain (?:is )?not reachable",
            r"unrouteable address",
            r"unroutable address",
            r"host \S+ not found",
            r"domain (?:may|might) not exist",
        ),
    ),
    (
        "networkerror",
        (
            r"name service error",
            r"name server",
            r"host name lookup failure",
            r"dns (?:error|lookup|failure)",
        ),
    ),
    (
        "userunknown",
        (
            r"user (?:is )?unknown",
            r"unknown (?:user|recipient|local[- ]part|mailbox|address|account)",
            r"no (?:such|this) (?:user|mailbox|recipient|account|address|person)",
            r"(?:user|recipient|mailbox|address|account) (?:does not|doesn't|does n't) exist",
            r"(?:account|address|mailbox) (?:that )?you tried to reach does not exist",
            r"(?:user|recipient|mailbox|address|account) (?:\S+ )?"
            r"(?:not|isn't) (?:found|known|listed|valid|exist)",
            r"(?:not|isn't) a (?:valid|known) (?:user|mailbox|recipient)",
            r"unknown or illegal alias",
            r"mailbox unavailable",
            r"mailbox not found",
            r"address (?:unknown|not found|invalid)",
            # Exchange Online's directory-based blocking of addresses it does not have.
            r"recipient address rejected: access denied",
            r"#?5\.1\.0 address rejected",
            r"no mailbox (?:here|by that name)",
            r"undeliverable address",
            r"addressee unknown",
            r"(?:user|mailbox) not (?:local|found)",
            r"couldn't find any host named",
            r"not listed in",
            r"no valid recipients",
            r"recipient not found",
            r"dd this user doesn't have",
            r"sorry, no mailbox here",
            r"mailbox (?:name )?(?:is )?(?:invalid|unknown)",
            r"user not found",
            r"(?:invalid|bad) (?:user|recipient|mailbox|address)",
            r"invalid final delivery userid",
            r"doesn't have an? \S+ account",
        ),
    ),
    (
        "filtered",
        (
            r"(?:recipient|email) preferences",
            r"refused due to recipient",
        ),
    ),
    (
        "securityerror",
        (
            r"smtp authentication",
            r"authentication required",
        ),
    ),
    (
        "norelaying",
        (
            r"relay(?:ing)? (?:access )?(?:denied|not (?:permitted|allowed))",
            r"not permitted to relay",
            r"unable to relay",
            r"we do not relay",
            r"no relaying",
            r"relay not permitted",
            r"not (?:a )?(?:local|gateway) (?:domain|host)",
            r"cannot relay",
            r"insecure mail relay",
        ),
    ),
    (
        "blocked",
        (
            r"blacklist",
            r"block ?list",
            r"\bdnsbl\b",
            r"\brbl\b",
            r"listed (?:at|in|on|by)",
            r"(?:ip|host|client|connection) (?:\S+ )?(?:is |has been )?"
            r"(?:blocked|refused|rejected|banned|denied|listed)",
            r"blocked (?:using|by|because|ip)",
            r"spamhaus",
            r"spamcop",
            r"sorbs",
            r"barracuda",
            r"dynamic (?:ip|address)",
            r"residential",
            r"not allowed to (?:send|connect)",
            r"service unavailable.*client host",
            r"connection refused",
            r"poor reputation",
            r"banned",
            r"messages from \d+\.\d+\.\d+\.\d+",
            r"smtp server of your isp",
            r"my name was rejected",
        ),
    ),
    (
        "rejected",
        (
            r"domain of sender",
            r"sender address (?:rejected|refused|does not exist|unroutable)",
            r"unroutable sender",
            r"sender was rejected",
            r"addresses rejected",
            # Gmail, sending as another address through that address's own server, which
            # would not take it: the sender's settings failed, not the recipient's side.
            r"'send mail as' (?:feature|account)",
            r"after mail from",
        ),
    ),
    (
        "expired",
        (
            r"expired",
            r"timeout",
            r"timed out",
            r"time out",
            r"retry time",
            r"too long in queue",
            r"could not be delivered (?:for|within|in)",
            r"delivery time",
            r"gave up",
            r"giving up",
            r"has not been delivered",
            r"message (?:has been )?delayed",
            r"undeliverable for",
            r"retry timeout",
            r"delivery failed \d+ attempts",
            r"not delivered within",
            r"aborted after",
            # A host it could not reach, like one that timed out, is given up on when time
            # runs out.
            r"host (?:is )?(?:not reachable|unreachable)",
        ),
    ),
    (
        "systemfull",
        (
            r"system (?:is )?full",
            r"disk full",
            r"insufficient system storage",
            r"out of disk",
            r"no space left",
        ),
    ),
    (
        "syntaxerror",
        (
            r"syntax error",
            r"command (?:unrecognized|not (?:recognized|implemented))",
            r"bad sequence of commands",
            r"unrecognized command",
            r"parameter (?:not|unrecognized)",
            r"improper sequence",
            r"malformed address",
        ),
    ),
    (
        "notcompliantrfc",
        (
            r"rfc ?(?:2822|5322|822|5321)(?!\s*;)",
            r"not (?:rfc|standards?)[- ]compliant",
            r"duplicate header",
            r"multiple (?:from|date|subject|to|message-id) headers?",
            r"multiple (?:\S+ )?addresses in from",
        ),
    ),
    (
        "mailererror",
        (
            r"mailer error",
            r"command (?:failed|died|output)",
            r"exit (?:code|status)",
            # The program's own words ("procmail: Couldn't create …"), not a pipe address
            # ("|exec /usr/bin/procmail"), which says only where the mail was to go.
            r"procmail:",
            r"pipe to",
        ),
    ),
]

# Words that only hint (a "rejected" or a "policy" says less than a 5.2.2): tried after
# the status code.
_HINTS: list[tuple[str, tuple[str, ...]]] = [
    (
        "expired",
        (r"queue too long",),
    ),
    (
        "policyviolation",
        (
            r"policy",
            r"prohibited",
            r"not allowed",
            r"against our terms",
            r"violat",
            r"attachment (?:type )?(?:not allowed|blocked|rejected)",
        ),
    ),
    (
        "filtered",
        (
            r"filtered",
            r"filter",
            r"refused by (?:the )?recipient",
            r"(?:recipient|user) (?:has )?(?:rejected|refused|blocked) (?:your|this|the)",
            r"does not accept mail from",
            r"not accept(?:ing)? (?:mail|messages|email) from",
            r"sender (?:is )?(?:not allowed|blocked)",
            r"delivery not authorized",
            r"sender address rejected.*(?:access|denied)",
        ),
    ),
    (
        "rejected",
        (
            r"sender (?:address )?(?:rejected|refused|denied|domain)",
            r"(?:domain|address) of sender",
            r"sender verify failed",
            r"mail from.*(?:rejected|refused)",
            r"return path",
            r"envelope (?:sender|from)",
            r"sender (?:is )?(?:invalid|unknown)",
            r"rejected",
            r"refused",
            r"not accepted",
            r"permission to post",
            r"not (?:a )?member of",  # a list that takes posts from its members only
            r"berechtigung",
            r"opr\u00e1vn\u011bn\u00ed",
            r"\u6a29\u9650",
            r"\u063a\u064a\u0631 \u0645\u0635\u0631\u062d",
        ),
    ),
    (
        "networkerror",
        (
            r"network",
            r"connection (?:refused|reset|timed out|lost|dropped|closed)",
            r"lost connection",
            r"mail loop",
            r"loop detected",
            r"too many hops",
            r"hop count",
            r"routing loop",
            r"unable to connect",
            r"could not connect",
            r"no route to host",
        ),
    ),
    (
        "contenterror",
        (
            r"header (?:error|syntax|invalid)",
            r"malformed",
            r"invalid (?:mime|header|character)",
            r"8-?bit",
            r"content (?:rejected|not allowed|error|violation)",
        ),
    ),
    (
        "systemerror",
        (
            r"system error",
            r"internal (?:server )?error",
            r"server error",
            r"local error",
            r"i/o error",
            r"configuration error",
            r"misconfigur",
            r"unable to (?:deliver|process)",
            r"(?:could not|couldn't|unable to|failed to) load",
            r"service not available",
            r"resources",
            r"service (?:is )?(?:currently )?unavailable",
        ),
    ),
    (
        "securityerror",
        (
            r"authentication (?:required|failed|credentials)",
            r"auth(?:entication)? required",
            r"security",
            r"certificate",
            r"encrypt",
        ),
    ),
]

_STILL_TRYING = re.compile(
    r"retr(?:y|ied|ying)|will (?:continue|keep)|still trying|after \d+ (?:day|hour|minute)"
    r"|for (?:up to )?\d+ (?:more )?(?:day|hour)",
    re.IGNORECASE,
)
_AT_RCPT = re.compile(
    r"(?:>>>\s*RCPT|RCPT TO|after RCPT|in reply to RCPT|smtp command\s*:?\s*RCPT)",
    re.IGNORECASE,
)


def _names_the_address(detail: str, reply_code: int | None, text: str) -> bool:
    """Whether the refusal was of the address itself: an addressing status (X.1.x), a
    reply that only RCPT gives (551 user not local, 553 mailbox name not allowed), or an
    answer to RCPT."""
    return detail.startswith("1.") or reply_code in (551, 553) or bool(_AT_RCPT.search(text))


# Words only the system that holds the mailboxes uses, whenever in the session it speaks:
# it knows its users, and no filter is involved.
_MAILBOX_SYSTEM = re.compile(
    "|".join(
        (
            # The local delivery agent.
            r"mail\.local|local delivery|procmail",
            # Directories looked up by name: Domino's, Notes' Name & Address Book,
            # Exchange's ("The recipient name is not recognized").
            r"not listed in (?:the )?(?:\S+ )?(?:directory|name (?:&|and) address book)",
            r"recipient name is not recognized",
            # IMail's notice ("Unknown user: a@b", "Invalid final delivery userid: a@b"),
            # which carries no reply code.
            r"^unknown user: \S+@|invalid final delivery userid",
            # An MMS gateway's (Verizon's) "No valid recipients for this MM".
            r"no valid recipients for this mm",
            # Yahoo refuses an account it does not have after DATA, with this wording.
            r"\bdd this user doesn't have",
        )
    ),
    re.IGNORECASE,
)


def _compiled(rules: list[tuple[str, tuple[str, ...]]]) -> list[tuple[str, re.Pattern[str]]]:
    return [(reason, re.compile("|".join(words), re.IGNORECASE)) for reason, words in rules]


_NAMES = _compiled(_PHRASES)
_HINTED = _compiled(_HINTS)
# Codes too general to decide by: the phrase rules or the class decide instead.
_VAGUE = {"0.0", "1.0", "2.0", "3.0", "4.0", "5.0", "7.0", "7.1", "1.5"}
# Codes that mean one thing whatever the words around them.
_DECISIVE = {
    "1.6": "hasmoved",
    "1.8": "rejected",
    "2.3": "exceedlimit",
    "3.4": "mesgtoobig",
    "7.9": "policyviolation",
    "7.25": "requireptr",
    "7.26": "authfailure",
}


def reason_for(
    status: str,
    reply_code: int | None,
    diagnostic: str,
    action: str = "failed",
    context: str = "",
    reading: str = "",
    remote: str = "",
) -> str:
    """The reason for one recipient's report; `context` is the rest of what the report
    says about the recipient, where the SMTP command that failed may be named, `reading`
    the words the reporting MTA put beside the status code, `remote` the server that
    refused."""
    if action in ("delivered", "relayed", "expanded") or status.startswith("2."):
        return "delivered"
    text = _server_words(_joined(" ".join(diagnostic.split())))
    specific = _detail(status)
    if specific in _DECISIVE:
        return _DECISIVE[specific]
    found = providers.by_provider_code(text)
    if found:
        return found
    # "Status: 5.2.1 (mailbox disabled, not accepting messages)": the reporting MTA says
    # what it makes of the code, and its words rank with the server's by how specific they
    # are. Only as a phrase: a bare "(network or routing status)" hints at nothing.
    found = by_phrase(f"{text} {reading}" if reading else text)
    if (
        found == "userunknown"
        and not _names_the_address(specific, reply_code, f"{text} {context}")
        and not _MAILBOX_SYSTEM.search(text)
    ):
        # Words of an unknown user, but not in answer to RCPT: the server took the address
        # and refused the message, which is a filter's doing; and a notice that does not
        # say when in the session it was told is read the same way.
        if specific in ("0.0", "") and providers.refuses_senders_as_unknown_users(remote):
            return "rejected"
        return "filtered"
    if found == "hostunknown" and status.startswith("4"):
        # A name lookup that failed only for now (SERVFAIL, a timeout) is DNS's trouble,
        # not a domain that is not there.
        return "networkerror"
    if found:
        return found
    if specific in _BY_STATUS and specific not in _VAGUE:
        return _BY_STATUS[specific]
    said = f"{text} {context}"
    if _AT_HELO.search(said):
        # Refused at the greeting or HELO: the server would not talk to the sending host,
        # whatever else its words hint at.
        return "blocked"
    found = by_phrase(text, _HINTED)
    if found == "contenterror" and specific.startswith("7."):
        # A complaint about the message's form under a security or policy status (X.7):
        # the server's policy refused it, not a media error (X.6).
        return "policyviolation"
    if found:
        return found
    if _AT_MAIL.search(said):
        return "rejected"  # refused at MAIL FROM, and no word of why: the sender was
    if specific.startswith("7.") and _ACCESS_DENIED.search(text):
        # Turned away by the server's access rules, at no stage the report names: a
        # security refusal, as the X.7 subject says.
        return "securityerror"
    if action == "delayed":
        # The reporting MTA keeps trying: time is what runs out. A server's bare "try
        # again later" says nothing of why.
        return "expired" if _STILL_TRYING.search(f"{text} {context}") else "onhold"
    if specific in ("7.1", "7.0"):
        return "rejected"
    # Nothing said beyond the class: the report cannot tell why, so the mail is on hold.
    return "onhold" if specific in _VAGUE or not specific else "undefined"


# Where the session stood when the server refused, as the report tells it.
_AT_HELO = re.compile(
    r"my name was rejected|(?:in reply to|after|>>>|smtp command\s*:?)\s*(?:HELO|EHLO)\b",
    re.IGNORECASE,
)
_AT_MAIL = re.compile(
    r"sender was rejected|(?:in reply to|after|>>>|smtp command\s*:?)\s*MAIL FROM\b",
    re.IGNORECASE,
)


_ACCESS_DENIED = re.compile(r"access denied", re.IGNORECASE)

# Amazon SES writes its own code and that code's name before the server's reply, quoted:
# "5.1.0 - Unknown address error 550-'5.7.1 <a@b>... Access denied'". The name is SES's
# guess at the code; the server's words say what happened.
_SES_LABEL = re.compile(r"^[245]\.\d{1,3}\.\d{1,3} - [^'\d]*(?=[245]\d\d[- ]')")


def _server_words(text: str) -> str:
    return _SES_LABEL.sub("", text)


# "550-5.7.1 … multiple" / "550 5.7.1 addresses in From: …": each line of a multi-line
# reply (RFC 5321, 4.2.1) starts with its code, which splits the server's sentence in two.
_CONTINUED = re.compile(r"(?<![\d.])([245]\d\d)-((?:[245]\.\d{1,3}\.\d{1,3})?)")


def _joined(text: str) -> str:
    """The reply with the codes that start its continuation lines taken out."""
    first = _CONTINUED.search(text)
    if first is None:
        return text
    code, status = first.groups()
    repeated = re.compile(rf"\s{code}[ -]{re.escape(status)}(?=\s)")
    return text[: first.end()] + repeated.sub("", text[first.end() :])


def by_phrase(text: str, rules: list[tuple[str, re.Pattern[str]]] = _NAMES) -> str | None:
    for reason, pattern in rules:
        if pattern.search(text):
            return reason
    return None


def is_hard(reason: str, status: str) -> bool:
    """A hard bounce: sending again to this address will fail the same way."""
    if reason == "notaccept":
        return status.startswith("5")
    return reason in _HARD


def _detail(status: str) -> str:
    """`5.1.1` → `1.1`: the subject and detail, which carry the meaning."""
    parts = status.split(".")
    return ".".join(parts[1:3]) if len(parts) == 3 else ""
