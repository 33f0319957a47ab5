"""The hand review of bench/label_real_prompts.py: every prompt was read; a line here is a decision
that differs from the rule's label or marks the prompt ambiguous (`?`: its type is a matter of
opinion, so it stays out of the clear-type accuracy figure). `s` = seed_task_N, `u` =
user_oriented_task_N, `o` = oasst_N. Conventions: a request to produce or edit prose (emails, posts, rewrites,
grammar fixes, titles, names) is creative_writing ("writing"); advice, recommendations, plans,
lists of ideas and how-tos are chat (no task type of ours fits them; they are never "clear");
factual look-ups are simple_qa; questions answered from a given text are extraction; a program's
behaviour explained or fixed is code_review; a logic puzzle is reasoning."""

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
o344 creative_writing; o346 reasoning?
"""


def _parse() -> tuple[dict[str, str], frozenset[str]]:
    hand: dict[str, str] = {}
    ambiguous: set[str] = set()
    for item in _DECISIONS.replace("\n", " ").split(";"):
        key, label = item.split()
        full = {"s": "seed_task_", "u": "user_oriented_task_", "o": "oasst_"}[key[0]] + key[1:]
        if label.endswith("?"):
            ambiguous.add(full)
        hand[full] = label.rstrip("?")
    return hand, frozenset(ambiguous)


HAND, AMBIGUOUS = _parse()
