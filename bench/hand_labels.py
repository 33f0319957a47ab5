"""The hand review of bench/label_real_prompts.py: every prompt was read; a line here is a decision
that differs from the rule's label or marks the prompt ambiguous (`?`: its type is a matter of
opinion, so it stays out of the clear-type accuracy figure). `s` = seed_task_N, `u` =
user_oriented_task_N, `o` = oasst_N, `d` = dolly_N, `t` = oasst_turn_N, `f` = dolly15k_N. Conventions: a request to
produce or edit prose (emails, posts, rewrites, grammar fixes, titles, names) is creative_writing
("writing"); advice, recommendations, plans, lists of ideas and how-tos are chat (no task type of
ours fits them; they are never "clear"); factual look-ups are simple_qa; questions answered from a
given text are extraction; a program's behaviour explained or fixed is code_review; a logic puzzle
is reasoning; picking one of given options for each item ("Which is a fish: X or Y") is
classification; a later turn is labelled by what it asks on its own ("And can you write it as a
Keats poem?" is writing; "Thanks!" is chat)."""

_DECISIONS = """
s0 chat; s1 reasoning; s2 creative_writing?; s3 reasoning?; s4 creative_writing?; s5 chat; s6 chat; s7 simple_qa;
s9 chat; s10 chat; s11 chat; s12 reasoning; s13 extraction?; s14 creative_writing?; s15 reasoning; s16 chat;
s17 chat; s19 reasoning?; s21 creative_writing; s22 math; s23 chat; s24 chat; s25 math; s26 extraction;
s28 code_review; s30 chat; s32 simple_qa; s33 creative_writing; s36 chat; s38 creative_writing?;
s40 chat; s42 creative_writing?; s43 creative_writing?; s45 math; s46 creative_writing?; s48 simple_qa;
s51 creative_writing; s52 chat; s53 extraction?; s54 reasoning?; s56 simple_qa; s58 math; s60 simple_qa;
s61 code_generation?; s65 simple_qa; s66 creative_writing?; s67 extraction; s70 chat; s71 creative_writing?;
s73 reasoning?; s75 creative_writing?; s77 creative_writing?; s78 extraction?; s81 chat; s82 reasoning?;
s83 math; s86 creative_writing; s88 simple_qa; s90 creative_writing?; s91 chat; s92 reasoning?;
s94 reasoning?; s99 chat; s102 reasoning?; s103 reasoning?; s104 reasoning?; s106 creative_writing?;
s107 simple_qa; s108 creative_writing?; s110 math; s111 reasoning?; s113 chat; s114 classification?;
s115 simple_qa; s116 chat; s118 chat; s119 creative_writing; s120 chat; s121 chat; s125 creative_writing?;
s126 creative_writing; s127 chat; s128 simple_qa; s131 chat; s132 math?; s133 chat; s134 simple_qa;
s135 extraction?; s142 chat; s143 simple_qa; s145 chat; s146 chat; s147 simple_qa; s148 classification;
s149 classification?; s150 classification; s151 classification; s152 classification; s153 classification?;
s154 classification; s155 reasoning; s156 classification; s158 code_review; s159 classification;
s160 classification?; s161 simple_qa; s162 classification?; s163 simple_qa; s164 math?; s166 classification;
s167 classification; s168 classification; s170 extraction?; s172 classification; s174 classification?;
u1 classification; u3 creative_writing?; u4 creative_writing?; u8 creative_writing?; u10 chat; u11 chat;
u14 code_generation?; u15 math?; u16 code_generation?; u17 simple_qa; u18 chat; u19 math; u20 chat;
u21 creative_writing?; u22 creative_writing?; u23 creative_writing?; u24 creative_writing; u26 chat;
u27 code_generation?; u30 chat; u31 reasoning?; u33 creative_writing?; u34 chat; u35 chat;
u36 classification?; u37 simple_qa; u40 code_review?; u41 chat; u42 chat; u43 chat; u44 chat;
u45 reasoning?; u48 chat; u50 chat; u51 chat; u53 creative_writing; u59 creative_writing;
u63 creative_writing?; u64 creative_writing?; u66 chat; u69 simple_qa; u70 creative_writing?; u71 simple_qa;
u72 creative_writing; u76 creative_writing; u77 code_generation?; u78 code_generation; u80 extraction?;
u81 summarization; u82 reasoning?; u83 reasoning?; u84 chat; u85 chat; u86 creative_writing; u87 chat;
u88 chat; u89 code_review; u90 code_review; u91 classification?; u92 code_generation?; u94 chat; u95 chat;
u96 code_review; u97 reasoning?; u99 creative_writing; u101 reasoning?; u102 extraction?; u103 chat;
u104 chat; u105 chat; u106 chat; u107 chat; u108 chat; u109 chat; u110 chat; u111 chat; u112 chat;
u113 chat; u114 math?; u115 reasoning?; u116 chat; u117 chat; u118 chat; u119 chat; u120 chat; u121 chat;
u122 chat; u123 chat; u124 translation; u125 simple_qa; u126 chat; u127 extraction?; u128 chat; u129 chat;
u130 chat; u131 chat; u132 chat; u133 reasoning?; u134 reasoning?; u135 chat; u136 chat; u137 chat;
u138 chat; u139 classification?; u141 math; u142 math; u143 math; u144 math; u145 simple_qa;
u146 reasoning?; u147 simple_qa; u148 simple_qa; u149 math; u150 reasoning?; u151 creative_writing?;
u152 simple_qa; u153 creative_writing?; u154 creative_writing?; u156 creative_writing; u157 extraction;
u160 summarization; u161 creative_writing; u168 chat; u169 creative_writing?; u170 simple_qa; u171 chat;
u172 chat; u173 reasoning?; u174 chat; u175 summarization?; u176 extraction?; u177 chat;
u178 code_generation?; u180 chat; u182 creative_writing?; u185 reasoning?; u186 creative_writing;
u188 creative_writing?; u190 code_generation; u191 summarization; u192 chat; u196 translation?;
u197 classification; u198 chat; u199 summarization?; u200 simple_qa; u201 creative_writing;
u203 simple_qa; u206 creative_writing?; u208 chat; u209 chat; u213 reasoning?; u214 chat; u215 chat;
u217 creative_writing; u222 summarization?; u224 extraction?; u225 classification; u226 code_generation?;
u228 creative_writing?; u229 simple_qa; u231 code_generation; u233 chat; u234 classification;
u237 creative_writing?; u239 chat; u241 creative_writing?; u243 code_review?; u244 classification;
u245 simple_qa; u246 creative_writing; u248 chat; u249 creative_writing; u250 simple_qa; u251 simple_qa;
o0 chat; o2 reasoning?; o3 chat; o5 creative_writing; o8 code_generation?; o10 extraction?; o13 simple_qa;
o16 chat; o18 reasoning?; o22 simple_qa; o23 chat; o27 simple_qa; o28 chat; o31 simple_qa; o32 chat; o36 chat;
o38 creative_writing; o42 reasoning; o44 simple_qa; o45 reasoning?; o47 chat; o50 code_generation?;
o51 reasoning?; o52 code_generation; o54 creative_writing; o55 creative_writing?; o58 code_generation?;
o61 chat; o62 reasoning?; o64 code_generation; o68 simple_qa; o69 chat; o70 reasoning?; o71 reasoning?;
o73 simple_qa; o75 reasoning?; o77 simple_qa; o81 creative_writing?; o82 chat; o84 reasoning; o88 simple_qa;
o90 code_generation?; o94 chat; o95 creative_writing; o100 simple_qa; o101 reasoning?; o103 reasoning?;
o104 reasoning; o105 simple_qa; o106 reasoning?; o108 chat; o109 simple_qa; o112 reasoning; o115 creative_writing;
o117 reasoning?; o119 reasoning?; o120 chat; o121 reasoning?; o122 code_review; o125 chat; o127 chat; o128 chat;
o131 math; o134 chat; o135 reasoning?; o137 simple_qa; o138 chat; o140 math; o142 chat; o144 reasoning?;
o145 creative_writing?; o146 chat; o148 code_generation?; o150 chat; o153 chat; o154 simple_qa; o155 simple_qa;
o160 chat; o165 reasoning?; o166 reasoning?; o167 creative_writing?; o169 simple_qa; o170 chat; o171 simple_qa;
o172 code_generation; o174 reasoning?; o176 simple_qa; o177 simple_qa; o178 chat; o179 chat;
o181 chat; o182 reasoning?; o183 chat; o185 reasoning?; o186 chat; o190 reasoning?; o191 reasoning?; o194 chat;
o195 chat; o196 simple_qa; o198 creative_writing?; o204 creative_writing?; o205 simple_qa; o208 reasoning?;
o209 chat; o210 creative_writing; o212 chat; o213 chat; o214 reasoning; o215 simple_qa; o216 creative_writing;
o217 reasoning?; o219 creative_writing; o220 reasoning?; o221 simple_qa; o223 reasoning?; o224 chat;
o225 creative_writing?; o228 chat; o229 chat; o231 simple_qa; o232 simple_qa; o233 reasoning?; o237 simple_qa;
o238 reasoning?; o240 reasoning?; o241 chat; o244 code_generation?; o245 chat; o248 reasoning?; o249 chat;
o250 code_generation?; o251 chat; o254 reasoning?; o255 chat; o257 chat; o258 chat; o259 chat; o262 reasoning?;
o264 reasoning?; o266 reasoning?; o267 simple_qa; o271 chat; o275 simple_qa; o277 chat; o278 reasoning;
o279 chat; o280 simple_qa; o281 chat; o282 creative_writing; o283 chat; o284 chat; o287 reasoning?; o288 simple_qa;
o289 simple_qa; o290 summarization?; o295 chat; o296 reasoning?; o298 simple_qa; o299 reasoning?;
o300 code_generation?; o301 reasoning?; o303 chat; o304 reasoning?; o305 reasoning?; o307 simple_qa;
o310 reasoning?; o317 simple_qa; o318 chat; o319 chat; o320 creative_writing; o322 creative_writing?;
o323 simple_qa; o324 reasoning?; o325 reasoning?; o326 simple_qa; o328 chat; o329 chat; o330 chat;
o331 reasoning?; o334 reasoning?; o336 creative_writing; o337 chat; o341 reasoning?; o343 chat;
o344 creative_writing; o346 reasoning?;
d0 reasoning?; d6 extraction?; d7 reasoning?; d8 classification; d9 extraction; d10 reasoning?; d15 extraction;
d16 reasoning?; d17 summarization?; d19 extraction; d20 chat; d21 summarization; d22 chat; d23 extraction?;
d25 extraction?; d26 reasoning?; d28 chat; d29 classification; d31 reasoning?; d32 simple_qa; d33 simple_qa;
d34 classification; d35 reasoning?; d37 reasoning?; d40 simple_qa; d41 simple_qa; d42 chat; d43 simple_qa;
d44 simple_qa; d45 extraction; d46 classification; d48 chat; d50 classification; d51 classification;
d52 extraction; d53 extraction; d57 simple_qa?; d58 chat; d60 extraction?; d61 extraction; d62 extraction;
d64 extraction; d66 extraction; d67 extraction; d69 classification; d71 extraction?; d75 extraction?;
d76 simple_qa; d77 classification; d79 extraction?; d81 extraction; d82 chat; d83 chat; d85 chat; d86 chat;
d87 extraction; d88 classification; d89 classification; d90 extraction?; d91 simple_qa; d92 extraction;
d93 simple_qa; d94 extraction; d95 extraction; d96 classification; d98 chat; d100 extraction?; d101 simple_qa;
d103 simple_qa; d105 chat; d106 extraction; d107 simple_qa; d110 chat; d111 extraction; d112 extraction;
d113 simple_qa; d115 simple_qa; d119 classification; d123 chat; d124 extraction; d125 simple_qa;
d127 classification; d129 extraction; d130 chat; d132 extraction; d133 extraction?; d134 creative_writing?;
d135 reasoning?; d138 simple_qa; d140 extraction; d142 extraction; d145 extraction; d149 reasoning?;
d150 classification; t3 reasoning?; t4 reasoning?; t8 chat; t11 chat; t13 creative_writing?;
t14 creative_writing?; t18 chat; t19 chat; t20 chat; t22 chat; t25 chat; t27 simple_qa?; t29 simple_qa;
t32 simple_qa?; t33 reasoning?; t34 simple_qa?; t38 chat; t39 chat; t43 chat; t44 simple_qa; t46 simple_qa?;
t47 reasoning?; t49 creative_writing?; t50 chat; t51 chat; t54 chat; t55 chat; t56 chat; t58 reasoning?;
t59 reasoning?; t64 chat; t67 simple_qa; t68 chat; t70 code_generation?; t71 code_review?;
t73 code_generation?; t74 chat; t75 chat; t76 reasoning?; t77 reasoning?; t79 simple_qa; t80 simple_qa;
t81 reasoning?; t82 reasoning?; t83 reasoning?; t88 reasoning?; t89 chat; t90 creative_writing?; t93 chat;
t94 simple_qa; t96 chat; t98 math; t101 chat; t103 chat; t106 creative_writing?; t109 chat;
t110 creative_writing; t111 simple_qa?; t112 chat; t115 simple_qa; t116 chat; t117 chat; t118 reasoning?;
t120 reasoning?; t123 creative_writing?; t125 reasoning?; t129 chat; t131 chat; t132 simple_qa?; t134 chat;
t135 creative_writing?; t136 chat; t137 creative_writing; t139 creative_writing; t140 creative_writing?;
t141 creative_writing; t142 creative_writing?; t143 chat; t144 reasoning?; t145 chat; t146 creative_writing?;
t147 creative_writing?; t149 creative_writing; t151 creative_writing; t152 reasoning?; t153 simple_qa?;
t156 chat; t158 chat; t159 math?; t162 simple_qa; t166 reasoning?; t169 simple_qa?; t170 simple_qa; t172 chat;
t174 chat; t176 simple_qa?; t177 chat; t178 chat; t180 simple_qa?; t181 simple_qa?; t183 reasoning?;
t184 simple_qa?; t186 chat; t188 chat; t189 code_review?; t190 chat; t191 code_generation?;
t192 code_generation?; t194 code_generation?; t196 simple_qa?; t197 summarization?; t201 chat; t204 reasoning?;
t205 simple_qa; t210 chat; t211 chat; t217 reasoning?; t218 reasoning?; t219 chat; t220 chat; t223 reasoning?;
t226 chat; t230 chat?; t231 code_generation?; t232 code_generation?; t233 chat; t237 code_generation;
t239 chat; t241 chat; t242 code_review?; t243 code_generation?; t247 simple_qa?; t250 simple_qa?; t253 chat;
t256 chat; t258 reasoning?; t260 chat; t262 simple_qa; t263 simple_qa; t264 simple_qa; t267 simple_qa;
t270 simple_qa; t272 simple_qa; t273 chat; t274 chat; t275 creative_writing?; t276 creative_writing;
t280 reasoning?; t281 reasoning?; t282 reasoning?; t283 reasoning?; t288 code_review?; t289 code_review?;
t290 creative_writing?; t293 reasoning?; t297 summarization; t299 creative_writing?; t301 creative_writing?;
t302 chat; t303 chat; t304 chat; t306 chat; t307 code_review?; t308 code_review?; t309 chat; t311 code_review?;
t316 simple_qa; t318 chat; t322 creative_writing; t327 reasoning?; t329 chat; t331 code_generation?;
t332 creative_writing; t334 chat; t335 creative_writing; t342 chat; t343 chat; t347 chat;
t348 creative_writing?; t349 creative_writing?; t352 chat; t362 chat; t365 chat; t366 chat; t370 simple_qa;
t372 chat; t373 chat; t378 chat;
f2 chat; f4 creative_writing?; f6 simple_qa; f8 reasoning?; f10 simple_qa; f11 simple_qa?; f12 chat;
f13 classification; f14 extraction; f15 classification; f16 simple_qa?; f17 extraction; f19 simple_qa?;
f20 chat; f23 classification; f25 classification; f27 simple_qa; f30 simple_qa; f31 extraction; f32 extraction;
f34 chat; f36 reasoning?; f37 chat; f40 chat; f41 chat; f42 summarization; f43 classification; f45 extraction;
f46 classification; f47 simple_qa?; f48 simple_qa?; f50 creative_writing; f51 simple_qa; f52 chat;
f53 extraction; f55 classification; f56 simple_qa?; f58 chat; f59 chat; f60 simple_qa; f61 classification;
f62 translation?; f65 classification; f66 classification; f68 simple_qa; f69 extraction; f70 chat;
f71 simple_qa?; f72 simple_qa; f73 extraction?; f74 simple_qa; f75 simple_qa?; f77 chat?; f78 extraction;
f79 chat; f80 simple_qa; f81 chat; f82 chat; f83 chat; f85 chat; f87 extraction; f90 simple_qa; f92 simple_qa;
f100 simple_qa?; f101 chat; f103 classification; f104 reasoning?; f105 simple_qa?; f109 simple_qa?; f110 chat;
f112 classification; f114 classification; f115 simple_qa?; f116 chat; f118 classification; f119 simple_qa;
f121 simple_qa; f124 extraction; f128 chat; f129 chat; f131 extraction; f133 simple_qa?; f134 chat?;
f135 extraction; f136 classification; f138 simple_qa; f140 simple_qa; f141 simple_qa; f142 creative_writing;
f143 chat; f146 extraction; f148 extraction; f149 classification; f150 chat; f151 extraction; f153 simple_qa;
f154 extraction; f155 simple_qa; f158 simple_qa?; f160 simple_qa?; f162 creative_writing?; f163 classification;
f164 chat; f165 reasoning?; f167 reasoning?; f168 chat; f169 extraction?; f170 extraction; f173 simple_qa?;
f174 extraction; f175 summarization?; f176 creative_writing; f177 chat; f178 classification; f179 simple_qa?;
f180 extraction; f181 chat?; f182 chat; f187 chat; f188 simple_qa; f189 extraction; f191 simple_qa; f193 chat;
f194 simple_qa?; f195 simple_qa; f196 chat; f199 chat; f203 chat; f204 chat?; f205 reasoning?;
f206 classification; f207 chat; f209 chat; f211 classification; f213 extraction?; f216 chat?; f217 chat;
f218 classification; f219 chat; f220 chat; f222 chat?; f223 chat; f227 simple_qa; f228 classification;
f229 chat; f233 extraction; f234 simple_qa?; f235 extraction?; f238 simple_qa; f240 classification;
f241 simple_qa?; f244 classification; f245 simple_qa?; f246 simple_qa; f247 simple_qa; f249 extraction;
f250 creative_writing; f253 simple_qa; f254 simple_qa?; f256 classification; f257 extraction;
f259 classification?; f260 reasoning?; f263 chat; f268 extraction?; f269 extraction; f270 chat;
f271 simple_qa?; f274 extraction; f276 classification; f277 simple_qa; f279 extraction?; f283 simple_qa;
f284 simple_qa; f285 extraction; f287 chat?; f289 classification; f290 chat; f291 extraction;
f294 creative_writing; f298 simple_qa; f300 chat?; f301 classification; f305 extraction?; f312 extraction?;
f317 simple_qa; f323 reasoning?; f324 creative_writing; f326 simple_qa; f329 extraction; f333 classification;
f334 extraction; f335 simple_qa; f336 chat; f337 extraction; f339 classification; f340 chat?; f343 chat?;
f344 extraction; f346 chat; f348 classification; f349 simple_qa?; f350 classification; f351 extraction;
f352 simple_qa?; f354 chat?; f355 simple_qa?; f356 simple_qa; f359 extraction; f361 classification;
f362 extraction?; f363 chat?; f364 reasoning?; f365 chat; f366 chat; f371 simple_qa; f372 chat;
f374 extraction?; f375 simple_qa; f378 simple_qa?; f381 extraction; f383 simple_qa; f384 simple_qa?;
f385 chat?; f387 classification; f388 extraction?; f389 extraction; f390 extraction?; f391 chat;
f392 simple_qa; f393 chat; f394 simple_qa; f395 simple_qa; f397 chat?; f398 simple_qa?; f400 extraction;
f402 simple_qa?; f403 simple_qa?; f404 simple_qa?; f407 simple_qa; f408 simple_qa?; f409 simple_qa;
f410 classification; f412 simple_qa
"""


def _parse() -> tuple[dict[str, str], frozenset[str]]:
    hand: dict[str, str] = {}
    ambiguous: set[str] = set()
    for item in _DECISIONS.replace("\n", " ").split(";"):
        key, label = item.split()
        full = {"s": "seed_task_", "u": "user_oriented_task_", "o": "oasst_", "d": "dolly_",
                "t": "oasst_turn_", "f": "dolly15k_"}[key[0]] + key[1:]
        if label.endswith("?"):
            ambiguous.add(full)
        hand[full] = label.rstrip("?")
    return hand, frozenset(ambiguous)


HAND, AMBIGUOUS = _parse()
