"""Auto-replies, unsubscribe requests, declines and human replies (nine languages and then some).

Everything is judged on the new text (quotes, signatures and legal footers removed) and the Subject."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date
from email.utils import parsedate_to_datetime

from cadence.core.classify import _text
from cadence.core.classify._dates import find_return_date
from cadence.core.classify._part import MimePart
from cadence.core.classify._status import lowercase_re
from cadence.core.model import InboundKind, Verdict

JUDGED_CHARS = 5000


def _rx(*parts: str) -> re.Pattern[str]:
    """One alternation, matched against lower-cased text (see lowercase_re)."""
    return lowercase_re("|".join(parts), re.MULTILINE)


SUBJECT_PREFIX_RE = re.compile(
    r"^(?:\s*(?:re|aw|sv|vs|wg|fw|fwd|tr|rv|rif|r|odp|antw|ref|res|enc|doorst|vb|atb|ynt|回复|答复)"
    r"\s*(?:\[\d+\])?\s*[:：]\s*|\s*\[[^\]]{1,30}\]\s*)+",
    re.IGNORECASE,
)
REPLY_SUBJECT_RE = re.compile(
    r"^\s*(?:re|aw|sv|vs|antw|odp|rv|r|rif|res|ynt|回复|答复)\s*[:：]", re.IGNORECASE
)

AUTO_SUBJECT_STRONG_RE = _rx(
    r"out of (?:the )?office|\bOOO\b|automatic reply|auto(?:matic)?[- ]?(?:reply|response|answer|responder)",
    r"^\s*auto\s*:|autoreply|abwesenheitsnotiz|automatische antwort|abwesenheit|réponse automatique",
    r"reponse automatique|respuesta automática|respuesta automatica|fuera de (?:la )?oficina",
    r"automatisch antwoord|afwezigheidsbericht|risposta automatica|fuori (?:ufficio|sede)",
    r"resposta automática|resposta automatica|ausência|ausencia temporal|odpowiedź automatyczna",
    r"autoodpowiedź|automatyczna odpowiedź|autosvar|automatiskt svar|frånvaromeddelande",
    r"不在|自動返信|自動応答",
    r"accusé de réception|empfangsbestätigung|eingangsbestätigung|acuse de recibo|ontvangstbevestiging",
    r"conferma di ricezione|confirmação de recebimento|potwierdzenie otrzymania|mottagningsbekräftelse",
    r"we(?:'ve| have) received your|thank you for (?:contacting|your (?:e-?mail|message|enquiry|inquiry))",
)
AUTO_SUBJECT_WEAK_RE = _rx(
    r"absence|absent|on (?:annual )?(?:leave|vacation|holiday)|vacation|holiday|urlaub|congés|vacaciones",
    r"vakantie|ferie|férias|urlop|nieobecn|semester|ledig|ticket|case (?:#|number|\d)|request (?:received|#)",
    r"\[[A-Z]{2,}-?\d{3,}[^\]]*\]|#\d{4,}",
)
# Phrases an auto-responder writes; a person answering rarely does.
AUTO_TEXT_STRONG_RE = _rx(
    r"(?:we|i) aim to (?:respond|reply|answer)|(?:will|shall) (?:respond|reply|get back to you) within|"
    r"(?:inbox|mailbox) is (?:checked|monitored|read) (?:once|twice|only|periodically|weekly|daily)|"
    r"(?:no|without|limited) access to (?:my )?e-?mails?|keinen zugriff auf (?:meine )?e-?mails?|"
    r"sans accès (?:à|a) (?:mes )?(?:e-?mails|courriels|messagerie)|sin acceso al correo",
    r"on (?:parental|maternity|paternity|sick) leave|has retired",
    r"this is an? (?:automatic|automated|auto-generated|auto)[- ]?(?:reply|response|message|e-?mail|"
    r"notification)",
    r"automatic reply|automated (?:message|response|reply)|auto-?generated|do not reply to this (?:message|"
    r"e-?mail)",
    r"this mailbox is not monitored|(?:we|i) (?:have )?received your (?:e-?mail|message|request|enquiry|"
    r"inquiry)",
    r"your (?:reference|ticket|case) (?:number|id|#)",
    r"(?:i am|i'm|i will be|i'll be) (?:currently )?out of (?:the )?office",
    r"out of (?:the )?office (?:until|from|starting|through|till|on)|will not return until",
    r"(?:i am|i'm|i will be|i'll be|we are|we're) (?:currently )?(?:away|on (?:annual |parental |maternity |"
    r"paternity |sick )?(?:leave|vacation|holiday)|out until|off (?:work )?until)",
    r"(?:our|the) offices? (?:is|are|will be) closed|closed for the holidays",
    r"(?:will|shall) (?:respond|reply|get back to you|answer)[^.\n]{0,40}(?:when i return|on my return|"
    r"upon my "
    r"return|when i'?m back|when we'?re back|after my return|as soon as (?:possible|i can) after)",
    r"limited (?:access to (?:my )?e-?mail|e-?mail access)|no longer (?:with|at|employed|works? (?:at|for|"
    r"with))",
    r"(?:this|my) (?:e-?mail )?(?:address|mailbox|account) is no longer (?:in use|active|monitored)",
    r"i(?:'ve| have)? left (?:the (?:company|firm|organi[sz]ation|business)|[^.\n]{2,50}? (?:on|in|"
    r"at the end of) "
    r"(?:\d|jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec))",
    # de
    r"automatisch (?:generierte|erstellte|versandte)|dies ist eine automatische|automatische (?:antwort|"
    r"nachricht)",
    r"(?:bin|ist|sind)[^\n]{0,60}?(?:abwesend|nicht im büro|im urlaub|nicht erreichbar|außer haus)",
    r"ab dem [^.\n]{0,30}wieder|nicht mehr (?:bei|für|im unternehmen|tätig)|wird nicht weitergeleitet",
    # fr
    r"message automatique|réponse automatique|(?:je suis|je serai)[^.\n]{0,20}(?:absente?|en congés?|"
    r"en vacances|en déplacement)|absente? (?:du bureau )?(?:jusqu|du|à partir)|"
    r"accusons (?:bonne )?réception",
    r"ne (?:fait|travaille) plus (?:partie|pour|chez)",
    # es
    r"mensaje automático|respuesta automática|(?:estoy|estaré)[^.\n]{0,20}(?:fuera|de vacaciones|ausente)",
    r"fuera de la oficina|ya no trabaja|este buzón no se revisa|hemos recibido su",
    # nl
    r"automatisch (?:gegenereerd|bericht|antwoord)|ik ben[^.\n]{0,30}(?:afwezig|met vakantie|niet aanwezig|"
    r"niet op kantoor)|afwezig (?:tot|t/m|van)|werkt niet meer|hebben uw (?:e-?mail|bericht) ontvangen",
    # it
    r"messaggio automatico|risposta automatica|(?:sono|sarò)[^.\n]{0,20}(?:fuori|in ferie|assente)",
    r"fuori ufficio|non lavora più|abbiamo ricevuto la sua",
    # pt
    r"mensagem automática|resposta automática|(?:estou|estarei)[^.\n]{0,20}(?:fora|de férias|ausente|"
    r"em férias)",
    r"fora do escritório|não trabalha mais|já não trabalha|recebemos (?:a sua|o seu|sua|seu) (?:e-?mail|"
    r"mensagem)",
    # pl
    r"wiadomość (?:została )?wygenerowana automatycznie|automatyczna odpowiedź|(?:jestem|będę)[^.\n]{0,20}"
    r"(?:na urlopie|poza biurem|nieobecn)|nie pracuje już|otrzymaliśmy (?:twoją|pana|pani)",
    # sv
    r"automatiskt (?:meddelande|svar|genererat)|(?:jag är|är jag)[^.\n]{0,20}(?:på semester|ledig|borta|"
    r"inte på kontoret|tjänstledig)|arbetar inte längre|vi har tagit emot",
    # ja
    r"不在|休暇|出張|自動返信|自動応答|このメールは自動",
)
AUTO_TEXT_WEAK_RE = _rx(
    r"i will be back|i'll be back|back in the office|away from (?:my desk|the office)|"
    r"on (?:a )?business trip|"
    r"attending (?:a|the) (?:conference|event|trade ?fair)|out sick|on sick leave",
    r"out of (?:the )?office|on (?:annual )?leave|on vacation|on holiday|travell?ing|"
    r"back (?:in the office )?on",
    r"return(?:ing)? (?:on|to the office)|part-time|do not work on|i work (?:monday|tuesday|mon)",
    r"im urlaub|abwesend|en congés?|de vacaciones|op vakantie|in ferie|de férias|na urlopie|på semester",
    r"bis (?:einschließlich |zum |am )?\d|jusqu'au|hasta el|t/m|fino al|até (?:o dia |dia )?\d|do \d|t\.o\.m",
    r"(?:has|have) (?:left|moved on from)",
)
LEFT_COMPANY_RE = _rx(
    r"has retired|is no longer part of|no longer works? here",
    r"no longer (?:with|works? (?:at|for|with)|employed|at\b)|(?:has|have) (?:left|moved on)",
    r"i(?:'ve| have)? left (?:the (?:company|firm)|[^.\n]{2,50}? (?:on|in) "
    r"(?:\d|jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec))",
    r"is no longer (?:in use|active|monitored|with)",
    r"nicht mehr (?:bei|für|im unternehmen|tätig)|ne (?:fait|travaille) plus|ya no trabaja|werkt niet meer",
    r"non lavora più|não trabalha mais|já não trabalha|nie pracuje już|arbetar inte längre|退職",
)
HUMAN_SIGNS_RE = _rx(
    r"\?",
    r"let'?s (?:talk|chat|set up|schedule|book|do)",
    r"\byes\b",
    r"sounds (?:good|great|interesting)",
    r"send me",
    r"interested",
    r"happy to (?:talk|chat)",
)

UNSUBSCRIBE_RE = _rx(
    # phrasings without a trigger word, in every language
    r"(?:don'?t|do not|no longer) (?:want|wish) to (?:receive|get|hear)(?: any)?(?: more|"
    r" further)? (?:e-?mails|"
    r"emails|messages|mails|these|this|from you|anything|sales|marketing)",
    r"(?:would rather|prefer) not to (?:receive|get|hear)(?: any)?(?: more| further)? (?:e-?mails|emails|"
    r"messages|"
    r"mails|these|from you|sales|marketing)",
    r"cease (?:all )?(?:contact|communication|e-?mailing|sending)|cease and desist",
    r"(?:want|wish|like|ask) to be (?:removed|taken off|deleted|unsubscribed)|be removed from",
    r"streichen sie mich|entfernen sie mich|nehmen sie mich (?:aus|von)|keine (?:e-?mails|mails|nachrichten|"
    r"werbung|post) mehr|unterlassen sie|möchte (?:keine|nicht mehr)[^.\n]{0,30}(?:erhalten|bekommen)",
    r"ne (?:souhaite|veux) plus (?:recevoir|être contacté)|supprimez[- ]moi|ne plus m'envoyer|"
    r"ne m'envoyez plus",
    r"elimín\w*me|elimin(?:ar|en)me|bórr\w*me|no (?:quiero|deseo) recibir|dejen de escribirme|quitarme de",
    r"haal (?:me|mij|ons) van|geen (?:e-?mails|mails|berichten) meer|wil (?:geen|niet langer)[^.\n]{0,30}"
    r"ontvangen|stop met (?:mailen|e-?mailen|sturen)|verwijder(?:en)? uit",
    r"rimuovermi|rimuovetemi|non (?:voglio|desidero) più ricevere|smettete di|disiscrivermi",
    r"retirem[- ]me|removam[- ]me|não (?:quero|desejo) (?:mais )?receber|parem de (?:me )?(?:enviar|escrever|"
    r"contactar)",
    r"nie chcę (?:więcej )?otrzymywać|nie życzę sobie|proszę o usunięcie",
    r"vill inte (?:ha|få) (?:fler|mer)|avsluta (?:min )?prenumeration",
    # en
    r"\bunsubscribe\b(?! (?:link|button|footer|page))",
    r"\bun-subscribe\b",
    r"\bremove (?:me|us|myself|my (?:name|address|e-?mail|details|data)|our (?:address|e-?mail|details)|"
    r"this (?:e-?mail|address))\b",
    # one-line requests: 'Remove.', 'Please remove', 'STOP please', 'Unsub', 'Opt out, thanks'
    r"^[^\w\n]*(?:please\s+|pls\s+)?(?:remove|stop|unsub|opt[- ]?out|delete)(?:\s+(?:me|us|it))?[^\w\n]*"
    r"(?:please|pls|thanks?|thank you|now)?[^\w\n]*$",
    r"remove (?:me |us )?(?:from|off) (?:(?:your|the|this|all|any) )?(?:mailing |email |"
    r"distribution )?lists?",
    r"take (?:me|us|my (?:name|address|e-?mail)|this address) off",
    r"\boff (?:your|the|this|all) (?:mailing |email )?lists?",
    r"(?:please )?stop (?:e-?mailing|emailing|mailing|sending|contacting|writing|spamming|messaging|"
    r"bothering)",
    r"\bopt (?:me )?out\b",
    r"(?:do not|don'?t|never) (?:e-?mail|contact|write to|message) (?:me|us)\b",
    r"(?:do not|don'?t) send (?:me|us) (?:any )?(?:more|further|e-?mails|emails|messages|anything)",
    r"no (?:more|further) (?:e-?mails|emails|messages|mails|contact|outreach)",
    r"never (?:e-?mail|contact|write to) (?:me|us)",
    r"(?:delete|erase|remove) (?:all )?(?:my|our) (?:personal )?(?:data|details|address|e-?mail|information|"
    r"contact)",
    r"right to (?:erasure|object)|\bart(?:icle|\.)? ?(?:17|21)\b",
    r"\bgdpr\b[^.\n]{0,80}(?:eras|delet|remov|object)",
    r"leave me alone|do-not-contact|do not contact list",
    # de
    r"abmelden|abbestellen|austragen|aus (?:dem|ihrem|eurem|ihren) (?:e-?mail-?)?verteiler|"
    r"keine (?:weiteren )?"
    r"(?:e-?mails|mails|nachrichten|werbung|zusendungen)",
    r"löschen sie (?:meine|unsere|mich)",
    r"(?:meine|unsere) (?:daten|e-?mail-?adresse|adresse|kontaktdaten)[^.\n]{0,40}(?:löschen|entfernen)",
    r"widerspreche",
    r"dsgvo[^.\n]{0,80}(?:lösch|widersp)",
    r"nicht (?:mehr )?(?:kontaktieren|anschreiben)",
    r"(?:schreiben|kontaktieren) sie mich nicht",
    r"von (?:der|ihrer) liste",
    # fr
    r"désinscri|desinscri|désabonne|desabonne|retirez[- ]moi|supprimez[^.\n]{0,40}(?:adresse|données|"
    r"coordonnées)",
    r"ne (?:plus|pas) (?:me )?(?:contacter|écrire|envoyer|recontacter)|ne me (?:contactez|recontactez|"
    r"écrivez) plus",
    r"retir(?:er|ez)[^.\n]{0,30}(?:de|des) (?:la |votre |vos )?(?:liste|fichier|base)",
    r"rgpd[^.\n]{0,80}(?:suppr|oppos|effac)",
    # es
    r"dar(?:me|nos)? de baja|dadme de baja|denme de baja|darnos de baja|bájame|dame de baja",
    r"(?:borr|elimin|supr)\w* (?:mis|nuestros) datos|dejen de (?:enviar|escribir|contactar)",
    r"no (?:me |nos )?(?:envíen|envíe|escriban|contacten|vuelvan a) ",
    r"supresión (?:de )?(?:mis|nuestros) datos|derecho de supresión|rgpd[^.\n]{0,80}(?:supr|oposi|elimin)",
    r"(?:sacar|quitar|eliminar)(?:me|nos)? de (?:la|su|vuestra) lista",
    # nl
    r"uitschrijven|afmelden|van (?:de|jullie|uw|je) (?:mailing ?|verzend)?lijst",
    r"verwijder (?:mij|me|mijn|ons)",
    r"stuur (?:me|mij|ons) geen",
    r"niet (?:meer )?(?:mailen|benaderen|contacteren|e-?mailen)",
    # it
    r"cancellami|cancellazione (?:dalla|dei miei|del mio|dalle)|disiscriv|rimuovet(?:e|emi)|"
    r"rimuover\w* (?:il )?mio|cancellar\w* (?:il )?mio",
    r"non (?:mi )?(?:scrivete|contattate|inviate|mandate) più|non (?:inviarmi|mandarmi|scrivermi|"
    r"contattarmi)",
    r"non (?:scrivetemi|contattatemi|mandatemi|inviatemi|scriveteci|contattateci)",
    r"cancellatemi|cancellarmi|cancellateci|togliet(?:e|emi)|dalla (?:vostra |sua )?(?:mailing ?list|lista)",
    r"(?:i )?miei dati[^.\n]{0,30}(?:cancell|elimin|rimuov)|dalla (?:vostra )?(?:mailing )?lista",
    # pt
    r"descadastr|remov(?:a|am|er|erem)[- ](?:me|o meu|meu|os meus)|removam (?:o )?meu|retir(?:e|em)[- ]me",
    r"não (?:me )?(?:envi(?:e|em)|contact(?:e|em)|volt(?:e|em) a)",
    r"(?:apagu|elimin)\w* (?:os )?meus dados",
    r"cancelar (?:a )?(?:minha )?(?:inscrição|subscrição)",
    r"da (?:vossa|sua) lista",
    # pl
    r"wypisz|wypisać|wypisanie|usu[nń]\w* (?:mnie|mój|moje|moich|nas|adres|dane)|usunięci[ea] (?:mojego|"
    r"moich|adresu|danych)",
    r"(?:proszę|prosimy) (?:nie|o nie) (?:pisać|wysyłać|kontaktować)|nie (?:wysyłajcie|piszcie|kontaktujcie)",
    r"z (?:listy|bazy) (?:mailingowej|adresowej|danych|kontaktów)",
    # sv
    r"ta bort (?:mig|oss|min|mina)|avregistrera|avprenumerera|sluta (?:skicka|maila|mejla|kontakta)",
    r"från (?:er|era|ert) (?:lista|utskick|register|sändlista)|från (?:listan|sändlistan)",
    # ja
    r"配信停止|配信を停止|送らないで|送信しないで|削除してください|送信を停止|配信解除|登録解除",
)
NEGATED_UNSUBSCRIBE_RE = _rx(
    r"(?:don'?t|do not|please don'?t|no need to|not asking (?:you )?to|never|won'?t)\s+(?:\w+\s+){0,2}?"
    r"(?:unsubscribe|remove|take (?:me|us) off|opt)",
    r"\bnot\s+(?:to\s+)?(?:unsubscrib|remov|opt)",
    r"(?:bitte )?nicht (?:abmelden|austragen|entfernen|löschen)",
    r"ne (?:me )?(?:désinscrivez|retirez|supprimez) pas|pas (?:la peine de|besoin de) (?:me )?(?:retirer|"
    r"désinscrire)",
    r"no (?:me|nos) (?:des|den|dé|dés|deis) de baja|no (?:me )?(?:borres|elimines|quites|saques)",
    r"niet (?:afmelden|uitschrijven|verwijderen)|non (?:mi )?(?:cancellate|cancellare|rimuovete|rimuovere|"
    r"disiscrivete)",
    r"não (?:me )?(?:remova|removam|descadastre|tire|retire)",
    r"nie (?:wypisywać|wypisujcie|usuwać|usuwajcie)",
    r"ta inte bort|inte avregistrera|avregistrera (?:mig|oss) inte",
)
# Words that look like a request but are about something else: past tense, other objects.
UNSUBSCRIBE_FALSE_RE = _rx(
    r"opted out of",
    r"remove (?:\w+ )?from (?:this|the) (?:thread|chain|cc|loop|call|invite)",
    r"remove (?:the|that|this) (?:attachment|file|link|line|clause|fee)",
    r"stop by",
    r"stopped using",
    r"stop (?:at|in|over)\b",
)
DECLINE_RE = _rx(
    r"give it a miss|not for now|isn'?t something (?:we|i)|(?:don'?t|do not) have (?:a|any) need|"
    r"(?:going to|have to|will|'ll) pass|different direction|(?:have to|must|will|'ll|politely|respectfully) "
    r"decline|we'?re covered|not looking to (?:change|switch)",
    r"brauchen (?:wir|ich) (?:das )?nicht|sind (?:sehr )?zufrieden|nicht relevant|kein thema für uns",
    r"ne (?:nous |m'|m’)intéresse pas|sommes satisfaits|merci,? mais non|pas pour le moment",
    r"estamos (?:contentos|satisfechos)|no nos hace falta",
    r"niet nodig|(?:zijn|ben) tevreden|nee,? bedankt",
    r"siamo a posto|siamo soddisfatti",
    r"estamos satisfeitos|não nos interessa",
    r"dziękuj\w*,? (?:ale )?nie\b|nie jest nam potrzebn",
    r"vi är nöjda",
    # en
    r"not (?:really |currently )?interested",
    r"no (?:real )?interest",
    r"\bno,? thanks?\b",
    r"no thank you",
    r"thanks,? but no",
    r"not (?:a )?(?:good |great |right )?fit",
    r"not (?:for us|relevant|a priority|right for us|"
    r"the right time|something we)",
    r"no (?:budget|need)\b",
    r"don'?t have (?:the |a |any )?budget",
    r"(?:we|i) (?:do not|don'?t) need",
    r"(?:we are|we're|i'm|i am) (?:all set|happy with|covered|good for now)",
    r"all set\b",
    r"already (?:use|using|have|work with|working with|signed|chose|picked|bought|in place|got|"
    r"invested|partnered|committed)",
    r"(?:happy|satisfied) with (?:our|the) current",
    r"(?:keep|stick with|stay with|staying with|sticking with) (?:our|the) (?:current|existing)",
    r"built (?:our|its|their|it) own|in[- ]house",
    r"decided (?:against|not to|to keep|to stay|to go with)",
    r"went with|signed (?:with|a contract)|chose (?:another|a different)|just renewed|renewed (?:our|"
    r"the) contract",
    r"the answer is no|answer is no",
    r"(?:we'?ll|i'?ll|we will|i will) pass|pass on this|\bpass\b\s*[.!]?\s*$",
    r"not (?:moving|going) (?:forward|ahead)",
    r"won'?t be (?:looking|moving|pursuing|proceeding|needing|changing|"
    r"taking)",
    r"not be looking",
    r"not looking (?:for|at|to)",
    r"no plans? to (?:change|switch|look)",
    r"please (?:don'?t|do not) follow up",
    r"not in the market",
    r"we'?re good\b",
    r"not at this time",
    r"no longer need",
    r"doesn'?t (?:fit|make sense) for us",
    # de
    r"kein(?:en)? (?:interesse|bedarf)",
    r"nicht interessiert",
    r"(?:haben|nutzen|verwenden|setzen) (?:bereits|"
    r"schon) ",
    r"(?:sind|bin) (?:gut )?versorgt",
    r"passt (?:leider )?nicht",
    r"keine (?:änderung|veränderung|"
    r"wechsel)",
    r"kommt (?:für uns )?nicht in frage",
    r"danke,? (?:aber )?nein",
    r"leider kein",
    # fr
    r"pas intéressée?s?",
    r"ne sommes pas intéressés",
    r"pas (?:de )?besoin",
    r"pas (?:un sujet )?pour nous",
    r"pas d'actualité",
    r"nous avons déjà",
    r"déjà (?:un|une) (?:prestataire|solution|outil|fournisseur|partenaire)",
    r"travaillons déjà",
    r"(?:sommes|suis) (?:déjà )?équipés?",
    r"non merci",
    r"ne donnerons pas suite",
    r"pas de budget",
    r"pas (?:la|une) priorité",
    # es
    r"no (?:nos |me )?interesa",
    r"no estamos interesados",
    r"no estoy interesad",
    r"ya (?:tenemos|contamos|usamos|"
    r"utilizamos|trabajamos)",
    r"no es (?:para nosotros|prioridad|una prioridad)",
    r"no tenemos (?:presupuesto|"
    r"necesidad)",
    r"no,? gracias",
    r"no necesitamos",
    # nl
    r"geen (?:interesse|behoefte|budget)",
    r"niet geïnteresseerd",
    r"hebben (?:al|reeds) ",
    r"werken al met",
    r"nee,? dank",
    r"niet voor ons",
    r"past niet",
    # it
    r"non (?:siamo |sono )?interessat",
    r"non (?:ci|mi) interessa",
    r"non fa per noi",
    r"abbiamo già",
    r"utilizziamo già",
    r"no,? grazie",
    r"non è (?:una )?priorità",
    r"nessun interesse",
    r"non abbiamo (?:bisogno|"
    r"budget)",
    r"(?:manteniamo|teniamo) il nostro",
    r"restiamo con",
    # pt
    r"não (?:temos |tenho )?interesse",
    r"sem interesse",
    r"não estamos interessados",
    r"já (?:temos|usamos|"
    r"utilizamos|trabalhamos)",
    r"não (?:temos|há) orçamento",
    r"sem orçamento",
    r"não é (?:uma )?prioridade",
    r"não,? obrigad",
    r"não precisamos",
    r"não faz sentido",
    # pl
    r"nie (?:jesteśmy|jestem) zainteresowan",
    r"nie interesuje (?:nas|mnie)",
    r"nie potrzebujemy",
    r"mamy już",
    r"korzystamy (?:już )?z",
    r"używamy już",
    r"nie,? dziękuję",
    r"brak (?:budżetu|zainteresowania)",
    r"nie jest dla nas",
    # sv
    r"inte intresserad",
    r"inget intresse",
    r"vi har redan",
    r"använder redan",
    r"inget behov",
    r"behöver inte",
    r"nej tack",
    r"inte aktuellt",
    r"passar inte",
    # ja
    r"興味(?:が|は)?(?:ありません|ない)",
    r"結構です",
    r"不要です",
    r"必要ありません",
    r"見送",
)
NEGATED_DECLINE_RE = _rx(
    r"not un-?interested", r"nicht uninteressiert", r"not not interested", r"pas inintéressé"
)
ENGAGED_RE = _rx(
    r"\?",
    r"tell me more",
    r"send (?:me|us|over)",
    r"can you send",
    r"could you send",
    r"let'?s (?:talk|chat|set up|schedule|book)",
    r"interested in (?:learning|seeing|hearing|the|a|your)",
    r"would (?:love|like) to",
    r"happy to (?:talk|chat|hop)",
    r"book a",
    r"what (?:does|would)",
    r"how (?:much|does)",
    r"pricing",
    r"\bprice",
    r"\bquote\b",
    r"\bdeck\b",
    r"brochure",
    r"material",
    r"mehr erfahren",
    r"schicken sie",
    r"envoyez",
    r"envíe",
    r"envía",
    r"\bstuur\b",
    r"mandate",
    r"inviate",
    r"\benvie\b",
    r"wyślij",
    r"\bskicka\b",
)


def _strip_subject(subject: str) -> str:
    return SUBJECT_PREFIX_RE.sub("", subject).strip()


def message_date(message: MimePart) -> date | None:
    value = message.get("Date")
    if not isinstance(value, str):
        return None
    try:
        return parsedate_to_datetime(value).date()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _header_is_auto(message: MimePart) -> tuple[bool, bool]:
    """(strong, weak): RFC 3834 and vendor headers; X-Auto-Response-Suppress or Precedence: bulk only weak."""
    auto_submitted = str(message.get("Auto-Submitted", "")).strip().lower()
    if auto_submitted and not auto_submitted.startswith("no"):
        return True, True
    for name in (
        "X-Autoreply",
        "X-Autorespond",
        "X-Autoresponder",
        "X-Autogenerated",
        "X-AutoReply-From",
        "X-Mail-Autoreply",
        "X-Vacation",
        "X-Autorespond-Reply",
        "X-Apple-Action",
    ):
        value = message.get(name)
        if value is not None and str(value).strip().lower() not in ("no", "false", "0", ""):
            return True, True
    precedence = str(message.get("Precedence", "")).strip().lower()
    if precedence in ("auto_reply", "auto-reply"):
        return True, True
    weak = precedence in ("bulk", "junk", "list") or message.get("X-Auto-Response-Suppress") is not None
    return False, weak


def is_auto_reply(message: MimePart, *, subject: str, fresh: str) -> bool:
    """`subject` and `fresh` (the new text) lower-cased."""
    strong_header, weak_header = _header_is_auto(message)
    if strong_header:
        return True
    head = fresh[:1500]
    score = 0
    if AUTO_SUBJECT_STRONG_RE.search(subject):
        score += 2
    elif AUTO_SUBJECT_WEAK_RE.search(subject):
        score += 1
    if weak_header:
        score += 1
    if AUTO_TEXT_STRONG_RE.search(head):
        score += 2
    elif AUTO_TEXT_WEAK_RE.search(head):
        score += 1
    if score and (HUMAN_SIGNS_RE.search(head) or _asks_to_unsubscribe(head)):
        score -= 2
    return score >= 2


def classify_reply(
    message: MimePart,
    *,
    subject: str,
    base: Verdict,
) -> Verdict:
    """`base` carries the identity fields (message_id, from_address, in_reply_to) of the message."""
    # what a person asks for is at the top; a 'reply' that runs on for pages is judged on its start
    fresh = _text.new_text(_text.body_text(message))[:JUDGED_CHARS]
    lowered = fresh.lower()
    clean_subject = _strip_subject(subject).lower()

    if is_auto_reply(message, subject=subject.lower(), fresh=lowered):
        reason = "left_company" if LEFT_COMPANY_RE.search(lowered[:1500]) else None
        return replace(
            base,
            kind=InboundKind.AUTO_REPLY,
            reason=reason,
            return_date=find_return_date(fresh[:1500], sent_on=message_date(message)),
        )
    # a rewritten Subject ('unsubscribe', 'Remove me') counts; the original subject after 'Re:' is ours
    judged_subject = "" if REPLY_SUBJECT_RE.match(subject) else clean_subject
    if _asks_to_unsubscribe(lowered) or (judged_subject and _asks_to_unsubscribe(judged_subject)):
        return replace(base, kind=InboundKind.UNSUBSCRIBE)
    if _declines(lowered) or (judged_subject and _declines(judged_subject) and not fresh):
        return replace(base, kind=InboundKind.NOT_INTERESTED)
    if base.in_reply_to or REPLY_SUBJECT_RE.match(subject):
        return replace(base, kind=InboundKind.REPLY)
    return replace(base, kind=InboundKind.OTHER)


def _asks_to_unsubscribe(text: str) -> bool:
    """`text` lower-cased."""
    for match in UNSUBSCRIBE_RE.finditer(text):
        line_start = text.rfind("\n", 0, match.start()) + 1
        window = text[max(line_start, match.start() - 60) : match.end() + 40]
        if NEGATED_UNSUBSCRIBE_RE.search(window):
            continue
        near = text[max(line_start, match.start() - 20) : match.end() + 40]
        if UNSUBSCRIBE_FALSE_RE.search(near):
            continue
        return True
    return False


def _declines(text: str) -> bool:
    """`text` lower-cased."""
    if not text or NEGATED_DECLINE_RE.search(text):
        return False
    for match in DECLINE_RE.finditer(text[:3000]):
        after = text[match.end() : match.end() + 300]
        # 'no thanks to the call, but could you send the deck?' is engagement, not a decline
        if ENGAGED_RE.search(after):
            continue
        return True
    return False
