"""Write the committed sample reviews as JSONL, Parquet and CSV.

Every text below was invented for this project; none is copied from a real
review. Run from anywhere: ``python sample_data/write_samples.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

# (source, stars, text). Stars follow sentiment: 4-5 positive, 1-2 negative,
# 3 neutral/mixed. Each source block mixes in long texts, HTML, URLs and
# awkward Unicode/whitespace so the cleaning stages have real work to do.
REVIEWS: list[tuple[str, int, str]] = [
    # ------------------------------------------------------------------ product
    ("product", 5, "This blender crushes ice in seconds and is easier to clean than I expected."),
    ("product", 5, "Best pair of hiking socks I have owned. No blisters after a 20 km day."),
    ("product", 4, "Solid little desk lamp. The warm light setting is perfect for reading at night."),
    ("product", 5, "The cast iron pan arrived pre-seasoned and my eggs slid right off on the first try."),
    ("product", 4, "Good headphones for the price. Bass is punchy and the ear cushions stay comfortable for hours."),
    ("product", 5, "I bought a second one for my sister. The electric kettle boils fast and the auto shut-off works every time."),
    ("product", 5, "Sturdy backpack with more pockets than I know what to do with. Survived three airports without a scratch."),
    ("product", 4, "Nice phone case, slim but protective. Dropped my phone twice on tile and not a crack."),
    ("product", 5, "The robot vacuum maps our apartment perfectly and the dog has finally stopped barking at it."),
    ("product", 4, "Comfortable office chair. Took twenty minutes to assemble and my back pain is noticeably better."),
    ("product", 5, "These running shoes are light, springy and true to size. Already logged 200 km in them."),
    ("product", 5, "Charger works with every device in the house. One brick instead of four — love it."),
    ("product", 4, "The air fryer makes crispy fries with a spoonful of oil. Basket is a bit small for a family, though."),
    ("product", 5, "Mechanical keyboard with a lovely tactile click. My typing got faster and it looks great on the desk."),
    ("product", 1, "The blender lid cracked the second time I used it. Cheap plastic, avoid."),
    ("product", 1, "Headphones stopped charging after two weeks. Support wanted me to pay for shipping the replacement."),
    ("product", 2, "The lamp flickers constantly and the dimmer only has two real settings."),
    ("product", 1, "Arrived with a dent in the side and a missing power cable. Returned immediately."),
    ("product", 2, "Phone case looked nice in the photos but the buttons are so stiff I can barely change the volume."),
    ("product", 1, "This vacuum gets stuck under the sofa every single day and then beeps until someone rescues it."),
    ("product", 2, "The backpack zipper broke on the first trip. Stitching on the strap is already coming loose."),
    ("product", 1, "Kettle leaves a weird plastic taste in the water no matter how many times I rinse it."),
    ("product", 2, "Shoes run a full size small and the sole started peeling after a month."),
    ("product", 1, "Charger gets alarmingly hot and smells like burnt plastic. I unplugged it and threw it out."),
    ("product", 2, "Keyboard is loud, which I expected, but several keys double-type. Very frustrating for work."),
    ("product", 1, "Mattress sagged in the middle within three months. The warranty claim process is a maze."),
    ("product", 2, "The coffee grinder is inconsistent — half powder, half whole beans. Not what I paid for."),
    ("product", 1, "Rain jacket soaked through in the first drizzle. 'Waterproof' is a lie."),
    ("product", 3, "It's an okay monitor. Colours are fine, the stand wobbles a little. Does the job for spreadsheets."),
    ("product", 3, "The air fryer works, but it's noisy and the timer dial feels flimsy. Mixed feelings."),
    ("product", 3, "Decent toaster. Browns unevenly on one side, but it's cheap and does what it says."),
    ("product", 5, "<p>Honestly the <b>best</b> knife set I&#39;ve owned.</p><p>Still razor sharp after a year &amp; the block looks great.</p>"),
    ("product", 1, "Broke after 3 days.<br/>Seller ignored my messages.<br/><br/>Do <i>not</i> buy."),
    ("product", 4, "Pros: quiet &amp; powerful<br>Cons: the cord is short &quot;by design&quot; apparently"),
    ("product", 5, "Followed the setup video at https://example.com/setup/blender-x2 and it was running in five minutes. Fantastic machine."),
    ("product", 1, "Check the complaints at www.example.org/forum/t/4411 before buying — the battery issue is widespread and mine died too."),
    ("product", 2, "Manual says to register at http://example.net/register but the page is a 404. Product itself is mediocre and overpriced."),
    ("product", 5, "Absolutely love this mug 😍☕ keeps my coffee hot for hours!"),
    ("product", 1, "Ｔｅｒｒｉｂｌｅ ｑｕａｌｉｔｙ. The handle snapped oﬀ on day one."),
    ("product", 4, "Très bien fait! The crème brûlée torch works perfectly — my café-style desserts finally look professional."),
    ("product", 2, "Meh.\t\tThe   instructions   are   unreadable\nand the screws don't fit."),
    ("product", 1, "Stopped working\u200b after a week\u0007. Total junk."),
    ("product", 5, (
        "I held off on buying an espresso machine for years because I assumed anything under a few hundred "
        "dollars would make bitter, watery coffee. After a month with this one I am happy to say I was wrong.\n\n"
        "Setup was painless. The water tank slides out from the side, so I can refill it without moving the "
        "machine out from under the cabinets, which was my biggest worry given our small kitchen. It heats up in "
        "roughly forty seconds, and the pressure gauge on the front is actually useful rather than decorative: "
        "once I learned to grind a little finer, the needle sits right in the middle of the ideal zone and the "
        "shots come out thick and syrupy.\n\n"
        "The steam wand took some practice. My first few attempts at milk foam were more like bubble bath, but "
        "after watching my partner (who worked in a café during university) I got the hang of it, and now I can "
        "make a decent flat white most mornings.\n\n"
        "Cleaning is simple. The drip tray is dishwasher safe, the portafilter basket pops out, and there is a "
        "descaling reminder light so you don't have to remember on your own.\n\n"
        "Minor complaints: the included tamper is a flimsy plastic thing, so I bought a metal one, and the cup "
        "warmer on top barely gets warm. Neither is a deal breaker. For the price, this machine punches well above "
        "its weight and has saved me a small fortune in coffee shop visits."
    )),
    ("product", 1, (
        "I really wanted to like this laptop. On paper it had everything I needed for university: a light "
        "chassis, a decent processor, and a battery that supposedly lasts twelve hours. In practice it has been "
        "one problem after another.\n\n"
        "The battery claim is the first thing to go. With the screen at half brightness and nothing more "
        "demanding than a browser and a word processor open, I get about four and a half hours. By the end of a "
        "long lecture day I am hunting for a power outlet like everyone else with an older machine.\n\n"
        "Then there is the trackpad. It randomly stops responding for a few seconds, usually in the middle of "
        "dragging a file or selecting text, and then jumps the cursor to a corner of the screen. I have updated "
        "every driver the manufacturer offers and even reinstalled the operating system. Nothing helped.\n\n"
        "The fan is the final straw. It spins up loudly whenever I open a video call, and during exams in a quiet "
        "hall that is genuinely embarrassing. The bottom of the case also gets hot enough that I can't use it on "
        "my lap.\n\n"
        "I contacted support twice. The first time I was told to reset the BIOS, and the second time I was asked "
        "to send the machine away for three weeks, which is not an option in the middle of a semester.\n\n"
        "I would not recommend this model to anyone who depends on their laptop for work or study. Spend a little "
        "more and get something reliable."
    )),
    ("product", 3, (
        "Mixed feelings about this cordless vacuum after two months of daily use, so I'll try to be fair.\n\n"
        "The good: it is genuinely light. I can carry it up the stairs with one hand and it fits in the narrow "
        "cupboard under the stairs with room to spare. Suction on hard floors is strong, and the little LED on the "
        "floor head shows dust I never knew was there, which is either a feature or a curse depending on how you "
        "look at it.\n\n"
        "The bad: on carpet the runtime drops dramatically. The box says forty minutes, and on the eco setting on "
        "hard floors I can believe it, but with the motorised brush on our living room rug I get maybe twelve "
        "minutes before it dies. The bin is also tiny, so I empty it two or three times per session, and hair "
        "wraps around the brush roll constantly.\n\n"
        "The in-between: the wall dock is handy, but the screws supplied were too short for our plaster walls, so "
        "I had to buy my own. The attachments are useful, though the crevice tool is a bit too wide for the gap "
        "beside the fridge.\n\n"
        "Would I buy it again? Probably, if it were on sale, because the convenience of grabbing it for quick "
        "cleanups has changed how often we vacuum. But as the only vacuum in a house with carpets and a "
        "long-haired cat, it falls short. Three stars feels right."
    )),
    ("product", 5, "Third set of these storage jars I've bought. Airtight, stackable, and the labels don't peel."),
    ("product", 3, "The drill is fine for light jobs around the house, but it struggles with anything harder than pine."),
    ("product", 5, "My daughter adores this bike helmet. Lightweight, well ventilated, and the magnetic buckle is genius."),
    ("product", 1, "The smartwatch loses its Bluetooth connection every hour. Sleep tracking is pure fiction."),
    ("product", 2, "Blanket is soft but sheds everywhere. My black sweater is now grey."),
    ("product", 1, "Suitcase wheel snapped off on its maiden voyage. Dragging it through the terminal was humiliating."),
    ("product", 5, "Noise-cancelling on these earbuds is remarkable. The train commute is finally peaceful."),
    ("product", 2, "The scale gives a different weight every time I step on it. Useless for tracking progress."),
    ("product", 4, "Good value yoga mat. Grippy, thick enough for my knees, slight rubber smell that faded in a week."),
    ("product", 1, "Printer refuses to print unless I buy the brand's own ink cartridges. Feels like a hostage situation."),
    ("product", 5, "This standing desk is rock solid even at full height, and the motor is whisper quiet."),
    ("product", 2, "Pillow was flat within a fortnight. Not worth half the price."),
    ("product", 4, "Tent pitched in under ten minutes and stayed dry through a stormy night."),
    ("product", 1, "The 'stainless' steel pot rusted after one wash."),
    ("product", 3, "Fine as a backup phone. Camera is weak and the battery is average, but it's cheap."),
    # --------------------------------------------------------------- restaurant
    ("restaurant", 5, "The mushroom risotto was creamy and perfectly seasoned. Our server remembered we were celebrating and brought a candle with dessert."),
    ("restaurant", 5, "Best tacos in the neighbourhood, hands down. The salsa verde has a real kick."),
    ("restaurant", 4, "Cosy little bistro with a short but thoughtful menu. The duck was excellent, the fries a touch soggy."),
    ("restaurant", 5, "Fresh bread, generous portions and a wine list that doesn't require a second mortgage. We'll be back."),
    ("restaurant", 5, "Our kids devoured the pizza and the staff were patient with all their questions. Rare to find that."),
    ("restaurant", 4, "Great brunch spot. Pancakes were fluffy and the coffee refills kept coming."),
    ("restaurant", 5, "The ramen broth was rich and deep, clearly simmered for hours. Worth the queue outside."),
    ("restaurant", 5, "Lovely vegan options that don't feel like an afterthought. The cauliflower steak was a revelation."),
    ("restaurant", 4, "Quick lunch, friendly service, fair prices. The lentil soup was exactly what I needed on a cold day."),
    ("restaurant", 5, "The tasting menu was a journey — eight courses and not a single miss. The wine pairings were spot on."),
    ("restaurant", 5, "Ordered takeout on a rainy night and it arrived hot, well packed and twenty minutes early."),
    ("restaurant", 4, "Tiny dumpling shop with big flavour. The pork and chive dumplings are the ones to get."),
    ("restaurant", 5, "Our anniversary dinner was perfect. Candlelit table by the window, attentive but unobtrusive service."),
    ("restaurant", 5, "Seafood so fresh it tasted like the sea. The grilled octopus alone is worth the trip."),
    ("restaurant", 1, "Waited fifty minutes for two burgers and both came out cold. No apology from anyone."),
    ("restaurant", 1, "Found a hair in my salad. The manager shrugged and offered a discount on dessert."),
    ("restaurant", 2, "Pasta was overcooked and swimming in oil. For these prices I expect much better."),
    ("restaurant", 1, "The waiter was openly rude when we asked to split the bill. Never coming back."),
    ("restaurant", 2, "Curry was so salty I had to drink three glasses of water. Rice was dry and clumpy."),
    ("restaurant", 1, "Got food poisoning after the chicken. Reported it to the health department."),
    ("restaurant", 2, "Music so loud we couldn't hear each other across a small table. Food was average at best."),
    ("restaurant", 1, "They charged us for drinks we never ordered and argued when we pointed it out."),
    ("restaurant", 2, "The sushi rice was warm and mushy and the fish tasted like it had been sitting out."),
    ("restaurant", 1, "Delivery took two hours and half the order was missing. Customer service never replied."),
    ("restaurant", 2, "Tiny portions, huge bill. Left hungry and poorer."),
    ("restaurant", 1, "Dirty tables, sticky menus, and the toilets were a horror show."),
    ("restaurant", 2, "Steak ordered medium-rare arrived grey all the way through. Sent it back and the second one was worse."),
    ("restaurant", 1, "Booked a table a month ahead and they gave it away. Stood at the door for forty minutes."),
    ("restaurant", 3, "Food was fine, nothing memorable. Service was slow but friendly."),
    ("restaurant", 3, "Good coffee, disappointing pastries. I'd come back for a drink but not for food."),
    ("restaurant", 3, "Nice terrace, average pizza. It's a pleasant place to sit in summer, and that's about it."),
    ("restaurant", 5, "<b>Amazing</b> pho &amp; spring rolls!!<br/>Broth was clear, fragrant and not too salty."),
    ("restaurant", 2, "The &quot;homemade&quot; gnocchi were clearly from a packet.<br>Dessert was okay, nothing more."),
    ("restaurant", 1, "<div>Cold fries, warm soda, and a 45&nbsp;minute wait.</div><div>No thanks.</div>"),
    ("restaurant", 4, "Saw them on https://www.example.com/best-brunch-2024 and it lived up to the hype. The baked eggs are a must."),
    ("restaurant", 1, "Their menu at http://example.org/menu.pdf lists prices 30% lower than what they actually charge. Shady."),
    ("restaurant", 5, "Booked through www.example.net/book?restaurant=412 in seconds. Dinner was superb from start to finish."),
    ("restaurant", 5, "Ｂｅｓｔ ｃｒｏｉｓｓａｎｔｓ in town 🥐🥐 flaky and buttery!"),
    ("restaurant", 4, "Le bœuf bourguignon était délicieux, and the crêpes were flambéed right at our table."),
    ("restaurant", 1, "Worst  service   ever.\n\nWe   were   ignored   for   30   minutes.\t\tLeft."),
    ("restaurant", 2, "The ﬁsh was overcooked and the ﬂatbread was stale. 😞"),
    ("restaurant", 1, "Rude\u200b staff, cold food and a forty-minute wait for the bill."),
    ("restaurant", 5, (
        "We stumbled on this place by accident after our original dinner plans fell through, and it turned out "
        "to be the highlight of our whole weekend away.\n\n"
        "The dining room is small, maybe twelve tables, with mismatched chairs and shelves full of preserved "
        "lemons and pickled vegetables in big glass jars. It feels like eating in someone's very well organised "
        "kitchen. The owner greeted us at the door, apologised that the only free table was next to the pass, and "
        "then spent the evening chatting with us between plates, which made it the best seat in the house.\n\n"
        "We shared the flatbread with whipped feta and honey, a plate of charred green beans with almonds, and the "
        "slow-roasted lamb shoulder, which arrived falling off the bone and sitting in a sauce we kept mopping up "
        "long after the meat was gone. Every dish tasted of care rather than showing off.\n\n"
        "Dessert was a simple orange and olive oil cake with a spoon of thick yoghurt. I would happily go back "
        "just for that.\n\n"
        "Service was relaxed without being slow, the house wine was cheap and very drinkable, and the bill for two "
        "came to less than we expected for a meal of that quality. Book ahead if you can; by the time we left "
        "there was a small crowd waiting outside. We will absolutely be back the next time we are in town."
    )),
    ("restaurant", 1, (
        "I rarely write reviews, but our experience here was bad enough that I feel other people should know "
        "what they are getting into.\n\n"
        "We booked a table for six to celebrate my father's seventieth birthday and mentioned the occasion when we "
        "made the reservation. When we arrived, the table was not ready, and we were asked to wait at the bar, "
        "where there were no free seats. Twenty-five minutes later we were led to a table for four with two extra "
        "chairs squeezed onto the corners.\n\n"
        "Ordering took another half hour because our server was covering what looked like the entire upstairs. "
        "Two of the dishes we asked for were unavailable, which we only learned when the food started arriving. "
        "My father's fish was overcooked and dry; my sister's vegetarian lasagne was still cold in the middle. "
        "When we mentioned it, the plate was taken away and returned ten minutes later, noticeably microwaved, "
        "with the cheese on top turned to rubber.\n\n"
        "The worst part came at the end. We had arranged to bring our own cake and paid the cake-cutting fee in "
        "advance. Nobody brought it out. When we asked, a staff member told us it had been 'misplaced' in the "
        "kitchen, and it was eventually found in a storeroom, slightly crushed.\n\n"
        "To be fair, the manager took the service charge off the bill. But the evening was meant to be special, "
        "and instead we spent it apologising to my dad. We won't be returning."
    )),
    ("restaurant", 4, (
        "Four stars rather than five, but only because of the noise level — the food and the service deserve "
        "full marks.\n\n"
        "This is a busy, modern Korean place with an open kitchen and long shared tables. On a Friday night it is "
        "loud, the kind of loud where you lean in to hear your friends, so it's not somewhere for a quiet "
        "conversation. If you can live with that, you are in for a treat.\n\n"
        "The fried chicken is the star: shatteringly crisp, glazed in a sticky sweet-and-spicy sauce, and served "
        "with pickled radish that cuts through the richness. We also loved the kimchi pancake, which was thin and "
        "crisp at the edges, and a bowl of bibimbap that arrived in a sizzling stone pot so that the rice at the "
        "bottom turned golden and crunchy.\n\n"
        "Staff were fast and upbeat. Our server suggested we order one less dish than we had planned, which "
        "turned out to be good advice since the portions are generous. Drinks were reasonably priced, and the "
        "house-made plum soda was excellent for the non-drinkers in our group.\n\n"
        "Tip: they don't take reservations for groups under six, so arrive before seven or expect to queue. The "
        "line moves quickly, though, and the wait was worth it. We have already planned a return visit with more "
        "friends."
    )),
    ("restaurant", 5, "The chef came out to ask how we liked the lamb. We liked it very much."),
    ("restaurant", 4, "Solid neighbourhood Thai place. Green curry is fragrant and service is quick."),
    ("restaurant", 5, "Incredible gelato — the pistachio tastes like actual pistachios, not green sugar."),
    ("restaurant", 1, "Ordered vegetarian, received a dish with bacon bits on top. Pretty careless."),
    ("restaurant", 2, "Overpriced cocktails that were mostly ice."),
    ("restaurant", 1, "The card machine was 'broken' so it was cash only, and of course no receipt."),
    ("restaurant", 5, "Cheapest great meal I've had in ages. The falafel wrap was huge and crispy."),
    ("restaurant", 2, "Lukewarm soup and a waiter who vanished for the rest of the evening."),
    ("restaurant", 4, "Really good burgers, though the bun gets soggy if you don't eat fast."),
    ("restaurant", 1, "Cockroach on the wall next to our table. We left without eating."),
    ("restaurant", 5, "Gluten-free menu with real care taken over cross-contamination. As a coeliac I felt safe for once."),
    ("restaurant", 3, "The bread basket costs extra, but the mains are reasonably priced. Swings and roundabouts."),
    ("restaurant", 3, "The lunch special is cheap and filling, though the flavours are pretty ordinary."),
    ("restaurant", 1, "The birthday cake we pre-ordered was forgotten entirely."),
    ("restaurant", 3, "Decent dim sum, long wait, crowded room. Go early or bring patience."),
    # -------------------------------------------------------------------- movie
    ("movie", 5, "A gorgeous, patient film that trusts its audience. The final scene left the whole cinema silent."),
    ("movie", 5, "Funniest comedy I've seen in years. The dinner party scene had me crying with laughter."),
    ("movie", 4, "Strong performances all round, especially from the young lead. A little long, but worth it."),
    ("movie", 5, "The soundtrack alone is worth the ticket. I've been listening to it on repeat all week."),
    ("movie", 5, "Smart, tense thriller with a twist I genuinely didn't see coming."),
    ("movie", 4, "A charming animated film that works for kids and adults. The little robot steals every scene."),
    ("movie", 5, "Breathtaking cinematography. Every frame of the desert sequence could be a painting."),
    ("movie", 4, "Fun popcorn action movie. It doesn't take itself too seriously and that's exactly why it works."),
    ("movie", 5, "This documentary changed how I think about the ocean. Beautifully shot and never preachy."),
    ("movie", 5, "A rare sequel that improves on the original. Deeper characters, bigger stakes, better jokes."),
    ("movie", 3, "Sweet enough romance, but the leads have little chemistry and the script plays it safe."),
    ("movie", 5, "The horror builds slowly and then never lets go. I slept with the lights on."),
    ("movie", 5, "An unforgettable period drama with costumes and sets that feel completely lived in."),
    ("movie", 4, "Clever script, snappy dialogue, and a villain you almost root for."),
    ("movie", 1, "Two and a half hours of nothing happening. I checked my watch at least a dozen times."),
    ("movie", 1, "The plot holes are big enough to drive a truck through. Characters make baffling decisions."),
    ("movie", 2, "Great trailer, dull movie. All the best moments were already in the ads."),
    ("movie", 1, "Wooden acting and a script that sounds like it was written by committee."),
    ("movie", 2, "The CGI looks unfinished and the fight scenes are edited so fast you can't follow them."),
    ("movie", 1, "A lazy remake that adds nothing except louder explosions."),
    ("movie", 2, "Started strong, then collapsed in the last act. The ending felt rushed and unearned."),
    ("movie", 1, "I walked out after an hour. Unbearably smug and pleased with itself."),
    ("movie", 2, "The jokes all land with a thud. Even the kids in the audience weren't laughing."),
    ("movie", 1, "Ruined a beloved book series. They cut the best characters and invented a pointless love triangle."),
    ("movie", 2, "Beautiful to look at, painfully boring to sit through."),
    ("movie", 1, "The sound mix is so bad that half the dialogue is inaudible under the music."),
    ("movie", 2, "Predictable from the first five minutes. Every twist was telegraphed."),
    ("movie", 1, "Worst film I've seen this year. Incoherent, ugly and far too long."),
    ("movie", 3, "Fine for a lazy Sunday. Forgettable, but not unpleasant."),
    ("movie", 3, "Great first half, muddled second half. I can't decide whether I liked it."),
    ("movie", 3, "The lead is wonderful; the film around her is just okay."),
    ("movie", 5, "<i>Stunning.</i> Simply <b>stunning</b>. The best film of the year &mdash; see it on the biggest screen you can find."),
    ("movie", 1, "SPOILER ALERT<br/><br/>The &quot;twist&quot; is that nothing matters. Two hours of my life gone."),
    ("movie", 2, "<p>Pretty visuals &amp; a decent score,</p><p>but the story is paper thin.</p>"),
    ("movie", 5, "Trailer is at https://example.com/watch?v=abc123 — but trust me, go in blind. A masterpiece."),
    ("movie", 1, "Read about the production chaos at www.example.org/news/1234 and you'll understand why this film is such a mess."),
    ("movie", 4, "Streaming now on http://stream.example.net/title/98765. A thoughtful little indie worth your evening."),
    ("movie", 5, "Wow 🤯🍿 what a ride!! Best superhero film in ages."),
    ("movie", 1, "Ｂｏｒｉｎｇ． Ｖｅｒｙ ｂｏｒｉｎｇ． Do not waste your money."),
    ("movie", 4, "A whimsical café-set comedy with a Nordic noir twist — un film étrange mais charmant."),
    ("movie", 2, "The   pacing\tis\tglacial.\n\n\nI fell asleep twice."),
    ("movie", 5, "A triumph\u00a0— ﬁve stars, and I don't give those out often."),
    ("movie", 5, (
        "I went in knowing almost nothing about this film except that a friend told me to see it in a cinema "
        "rather than waiting for streaming. She was right.\n\n"
        "The story follows a retired lighthouse keeper who agrees to take in his estranged granddaughter for one "
        "winter. That's it; there is no murder, no conspiracy, no big twist. What there is instead is two hours of "
        "two stubborn people slowly learning how to sit in the same room without arguing, and it is completely "
        "absorbing.\n\n"
        "The performances are extraordinary. The older actor says very little, but his face does all the work — a "
        "small twitch at the corner of his mouth when she finally laughs at one of his terrible jokes got a bigger "
        "reaction from the audience than most blockbuster action scenes. The young actress playing the "
        "granddaughter is a real discovery, sharp and funny and never cute.\n\n"
        "The photography deserves its own paragraph. The island is shot in cold blues and greys, with the "
        "lighthouse beam sweeping across the frame at night, and the storm sequence about two thirds of the way "
        "in is as tense as any thriller I've seen this year.\n\n"
        "If I had one criticism, it's that a subplot involving a visiting journalist goes nowhere. But that's a "
        "small thing. This is a patient, generous and beautifully made film, and I left the cinema wanting to "
        "call my own grandparents."
    )),
    ("movie", 1, (
        "I'm a huge fan of the original trilogy, so I was excited when this sequel was announced. I wish I had "
        "stayed home.\n\n"
        "The problems start immediately. The opening twenty minutes are almost entirely exposition, with "
        "characters explaining events from the previous films to each other in conversations no human being would "
        "ever have. Then the story jumps forward fifteen years without explanation, and several beloved characters "
        "are simply missing, mentioned once in passing and never again.\n\n"
        "The new protagonist is a blank. We are told repeatedly that she is brilliant and brave, but we never see "
        "her make a single clever decision; things just happen around her, and other characters rescue her at "
        "convenient moments. The villain fares even worse. His motivation changes three times, and by the end I "
        "honestly couldn't tell you what he wanted.\n\n"
        "Visually it looks expensive but weightless. Every location is a grey-brown digital set, the action is "
        "shot in shaky close-ups, and the big battle at the end is so dark I could barely see who was fighting "
        "whom. The music tries desperately to make us feel something by quoting the old themes, which only "
        "reminded me how much better the earlier films were.\n\n"
        "At two hours and forty minutes it is also far too long. There were audible groans in my screening when "
        "yet another false ending appeared. Fans of the series deserve better than this cynical, lifeless "
        "cash-in."
    )),
    ("movie", 3, (
        "This is one of those films I keep arguing with myself about, which might be a point in its favour, or "
        "might just mean it's a mess. Let me try to lay out both sides.\n\n"
        "On the plus side, the first act is terrific. The setup — a small-town radio host starts receiving calls "
        "from listeners describing events that haven't happened yet — is genuinely creepy, and the film takes its "
        "time building atmosphere. The sound design in particular is excellent: crackling static, half-heard "
        "voices, the hum of the old studio equipment. The lead gives a warm, grounded performance that makes the "
        "supernatural elements easier to accept.\n\n"
        "On the minus side, the film seems to lose its nerve around the midpoint. Instead of trusting the eerie "
        "mood, it starts piling on explanations, flashbacks and a government conspiracy that feels borrowed from "
        "a different, worse movie. The last half hour is a muddle of chase scenes and exposition, and the ending "
        "answers questions nobody was asking while ignoring the ones that actually mattered.\n\n"
        "Technically it's well made, the cast is good, and I was never exactly bored. But I left feeling that "
        "there was a brilliant short film hiding inside an ordinary feature. Worth a watch on streaming if the "
        "premise appeals to you; I wouldn't rush to the cinema for it."
    )),
    ("movie", 5, "I laughed, I cried, I called my mum afterwards. That's a good film."),
    ("movie", 4, "Solid heist movie with a great ensemble cast and a very satisfying final reveal."),
    ("movie", 5, "The lead actor disappears completely into the role. Award-worthy stuff."),
    ("movie", 1, "Loud, ugly and stupid. The robots fight, then fight again, then fight some more."),
    ("movie", 2, "A decent idea buried under a clumsy script and some baffling casting."),
    ("movie", 1, "Product placement every ninety seconds. It's an advert with a plot attached."),
    ("movie", 5, "Tender, funny and heartbreaking in equal measure."),
    ("movie", 2, "The middle hour drags badly. It could easily have lost forty minutes."),
    ("movie", 4, "A fun, gory horror-comedy. Not for the squeamish, but great with a crowd."),
    ("movie", 1, "Lazy stereotypes played for cheap laughs. Embarrassing."),
    ("movie", 5, "The best animated feature of the decade. The rain sequence is pure magic."),
    ("movie", 2, "Nice costumes, lifeless characters. I didn't care about anyone."),
    ("movie", 4, "Surprisingly moving sports drama, even for someone who doesn't care about football."),
    ("movie", 1, "Fell asleep, woke up, and the movie was still going and still bad."),
    ("movie", 3, "Competent and well made, but I've seen this exact story a dozen times."),
    # ---------------------------------------------------------------------- app
    ("app", 5, "Finally a budgeting app that doesn't nag me. Clean design, and the monthly summary is genuinely useful."),
    ("app", 5, "The offline maps saved me on a hiking trip with zero signal. Worth every cent."),
    ("app", 4, "Great habit tracker. Simple, pretty, and the streak counter keeps me honest."),
    ("app", 5, "Language lessons are short enough to fit in a coffee break. I've kept a 90-day streak."),
    ("app", 5, "Best podcast player I've tried. Smart speed and silence trimming save me hours a week."),
    ("app", 4, "Solid note-taking app. Sync between phone and laptop is instant."),
    ("app", 5, "The meditation sessions actually help me fall asleep. The rain sounds are perfect."),
    ("app", 5, "Splitting bills with flatmates has never been easier. No more awkward spreadsheets."),
    ("app", 4, "Weather app with accurate hourly forecasts and no intrusive ads. Rare these days."),
    ("app", 5, "The photo editor is powerful but still easy to learn. The one-tap presets are lovely."),
    ("app", 5, "The recipe app scales ingredients automatically and builds a shopping list. Game changer."),
    ("app", 4, "Great workout app with clear videos. I wish there were more yoga routines, but overall excellent."),
    ("app", 5, "Support replied within an hour and fixed my account issue the same day. Impressive."),
    ("app", 5, "The new dark mode is easy on the eyes and the battery. Thank you, developers!"),
    ("app", 1, "Crashes every time I try to upload a photo. Reinstalled twice, no change."),
    ("app", 1, "The latest update deleted all my saved notes. There is no backup option. Furious."),
    ("app", 2, "Way too many ads. A thirty-second video between every level is ridiculous."),
    ("app", 1, "Charged my card after I cancelled the free trial. Still waiting for a refund."),
    ("app", 2, "Login keeps failing with 'unknown error'. I tried resetting my password three times."),
    ("app", 1, "Asks for access to my contacts, location and microphone for a flashlight app. Uninstalled."),
    ("app", 2, "The redesign buried every useful feature three menus deep. Please bring back the old layout."),
    ("app", 1, "Drains my battery by 30% overnight even when it's closed."),
    ("app", 2, "Notifications arrive hours late, which defeats the entire purpose of a reminder app."),
    ("app", 1, "Subscription price doubled with no warning. Goodbye."),
    ("app", 2, "Sync between devices is unreliable — edits vanish at random."),
    ("app", 1, "Can't even open it on my tablet. Just a white screen forever."),
    ("app", 2, "Search is useless; it can't find notes even when I type the exact title."),
    ("app", 1, "Constant pop-ups asking me to rate the app. Well, here's my rating."),
    ("app", 3, "Does what it says, but the interface feels dated. Functional, not delightful."),
    ("app", 3, "Good features hidden behind a pricey subscription. The free tier is very limited."),
    ("app", 3, "Works fine on my phone, sluggish on my older tablet."),
    ("app", 5, "<b>Love it!</b> The widgets are <i>so</i> handy &amp; customisable."),
    ("app", 1, "Error message says &quot;Something went wrong&lt;br&gt;&quot; — it literally shows the HTML tag. Nothing works."),
    ("app", 2, "Changelog:<br/>- &quot;Bug fixes and improvements&quot;<br/>Reality:<br/>- new bugs, no improvements"),
    ("app", 1, "The privacy policy at https://example.com/privacy says they share data with 'partners'. No thanks."),
    ("app", 5, "Imported my whole library from www.example.org/export in one click. Brilliant tool."),
    ("app", 2, "Support told me to check http://help.example.net/kb/0042, which just redirects to the home page."),
    ("app", 5, "Super app 👍👍 simple and fast, I use it every day 🙂"),
    ("app", 1, "App crashes on launch\u0007\u0007 after update 4.2. Unusable!!!"),
    ("app", 4, "Funciona muy bien, la sincronización es rápida. Great for my bilingual family."),
    ("app", 2, "ｓｌｏｗ ａｎｄ ｂｕｇｇｙ, and the eﬃciency claims are nonsense."),
    ("app", 1, "Keeps   logging   me   out.\n\tEvery.\n\tSingle.\n\tDay."),
    ("app", 5, (
        "I've tried probably a dozen task managers over the years, and this is the first one that has stuck for "
        "more than a month. Here is why.\n\n"
        "First, capture is fast. There's a widget on my home screen and a keyboard shortcut on my laptop, and both "
        "open a single text box. I type something like 'call dentist tomorrow 10am' and it understands the date "
        "and time without me having to tap through menus. That alone means things actually get written down "
        "instead of floating around in my head.\n\n"
        "Second, the daily view is calm. It shows what's due today, what's overdue, and nothing else. Projects and "
        "tags exist if you want them, but they stay out of the way. I used to feel anxious opening my old app "
        "because it showed me three hundred items at once; this one shows me eight.\n\n"
        "Third, sync has been flawless across my phone, tablet and work computer. I've edited the same list on two "
        "devices within seconds of each other and it merged the changes correctly.\n\n"
        "The free version is generous, and the paid tier is reasonably priced for what it adds: location-based "
        "reminders, file attachments and a yearly review feature that was surprisingly fun to read in January.\n\n"
        "My only wish is better calendar integration; at the moment it's read-only. But the developers publish a "
        "public roadmap and respond to feedback, so I'm optimistic. Highly recommended."
    )),
    ("app", 1, (
        "I have used this fitness app daily for almost three years and paid for the annual subscription each "
        "time, so it pains me to write this, but the latest version has ruined it.\n\n"
        "The update arrived without warning and replaced the simple workout log with a 'social feed' that I never "
        "asked for. The first thing I now see when I open the app is other people's selfies and a prompt to follow "
        "influencers. The button to start a workout, the one thing I actually use, moved from the middle of the "
        "home screen to a small icon in the corner of a submenu.\n\n"
        "Worse, my history is broken. Workouts from before the update show the wrong dates, many personal records "
        "have simply disappeared, and the charts I relied on to track progress now display flat lines. I contacted "
        "support and received an automated reply suggesting I log out and log back in. I did. Nothing changed. A "
        "second message has gone unanswered for eleven days.\n\n"
        "Performance is also noticeably worse. The app takes several seconds to load on a recent phone and "
        "occasionally freezes when I try to save a set, which means I've lost data mid-session more than once.\n\n"
        "I understand that companies want growth, but this update abandons the loyal users who paid for a "
        "focused, reliable tool. I've exported what data I could and cancelled my renewal. Unless the old "
        "interface returns, I won't be back."
    )),
    ("app", 4, (
        "A short review turned into a long one, sorry, but this app deserves the detail.\n\n"
        "I use it to manage a small community garden: forty plots, about sixty members, a shared tool shed, and an "
        "endless stream of watering rotas. Before this, we ran everything through a group chat and a spreadsheet "
        "that only one person knew how to edit. It was chaos.\n\n"
        "Setting up took an evening. You create a 'space', add members by link, and then build simple boards for "
        "rotas, announcements and the tool booking calendar. Members get reminders when it's their turn to water, "
        "and can swap shifts with each other without involving me, which has saved me probably two hours a "
        "week.\n\n"
        "Non-technical members have adapted better than expected. Our oldest gardener is in her eighties and she "
        "now posts photos of her tomatoes every week. The text is large and readable, and the app works on older "
        "phones too.\n\n"
        "Why not five stars? The web version lags behind the mobile app, so some settings can only be changed on "
        "a phone, which is awkward when I'm doing admin on my laptop. Exports are also limited to CSV without "
        "attachments. And the free plan caps members at fifty, so we had to upgrade, though the nonprofit discount "
        "made that painless.\n\n"
        "Overall, it has made running a volunteer group noticeably less stressful. I'd recommend it to any club or "
        "small organisation drowning in group chats."
    )),
    ("app", 5, "Cleanest to-do list app out there. No clutter, no gimmicks."),
    ("app", 4, "The transit app is accurate to the minute. It occasionally misses platform changes."),
    ("app", 5, "My kids practise times tables with it without being asked. That says everything."),
    ("app", 1, "Paid for premium, features still locked. Support is a chatbot that loops forever."),
    ("app", 2, "Voice recognition is poor; it mangles every second word."),
    ("app", 1, "Took my money and then the servers shut down a week later."),
    ("app", 5, "A password manager that actually works with every site I use. Autofill is flawless."),
    ("app", 2, "The sleep tracker claims I slept eleven hours. I was awake at 3 am scrolling this very app."),
    ("app", 4, "Good banking app, fast transfers, and the spending categories are surprisingly accurate."),
    ("app", 1, "Unskippable tutorial every time I open it. Who designed this?"),
    ("app", 5, "The screen reader support is excellent. As a blind user, I rarely get to say that."),
    ("app", 3, "Some screens are great, others crash when rotated. Hit and miss, like most apps of this kind."),
    ("app", 3, "The journaling prompts are nice, but exporting entries is clunky. Average overall."),
    ("app", 1, "Lost my entire save file after the cloud migration."),
    ("app", 3, "Fine for basic edits, but professionals will want something more capable."),
    # -------------------------------------------------------------------- hotel
    ("hotel", 5, "Spotless room, comfortable bed and the quietest night's sleep I've had in a city hotel."),
    ("hotel", 5, "The staff upgraded us to a sea-view room when they heard it was our honeymoon. Unforgettable stay."),
    ("hotel", 4, "Great location, two minutes from the station. The room was small but smartly designed."),
    ("hotel", 5, "The breakfast buffet was outstanding — fresh pastries, real coffee and an omelette station."),
    ("hotel", 5, "The rooftop pool at sunset is worth the price alone. Friendly bar staff too."),
    ("hotel", 4, "Clean, modern, good value. The shower pressure was fantastic."),
    ("hotel", 5, "The front desk arranged a late checkout without any fuss so we could rest before our night flight."),
    ("hotel", 5, "Charming family-run guesthouse. The owner gave us hand-drawn maps of the best walks."),
    ("hotel", 4, "Comfortable stay, helpful concierge. Wifi was a little slow in the evenings."),
    ("hotel", 5, "The kids loved the play area, and the family room had plenty of space for all of us."),
    ("hotel", 5, "Impeccable service from check-in to check-out. They even remembered how I take my tea."),
    ("hotel", 4, "Lovely spa and a very calm atmosphere. The restaurant was a bit pricey."),
    ("hotel", 5, "Mountain views from the balcony and a crackling fireplace in the lounge — pure bliss."),
    ("hotel", 5, "Pet-friendly and genuinely welcoming. Our dog got a bed and a bowl of treats."),
    ("hotel", 1, "Stains on the sheets and hair in the bathroom. Housekeeping shrugged when we complained."),
    ("hotel", 1, "The room was directly above a nightclub. Bass thumping until 4 am."),
    ("hotel", 2, "Photos online show a renovated lobby; in reality the whole place is tired and smells of damp."),
    ("hotel", 1, "They lost our reservation and the only room left was a windowless box next to the lift."),
    ("hotel", 2, "The air conditioning rattled all night and didn't cool anything."),
    ("hotel", 1, "Charged a 'resort fee' at checkout that was never mentioned when booking."),
    ("hotel", 2, "Breakfast ran out of almost everything by 8:30. Cold eggs and no coffee cups."),
    ("hotel", 1, "Found bed bugs on the second night. Management offered us a free drink. A drink."),
    ("hotel", 2, "Paper-thin walls. I now know far too much about the couple next door."),
    ("hotel", 1, "Waited an hour to check in while the only receptionist argued on the phone."),
    ("hotel", 2, "The pool was closed for maintenance the entire week and nobody told us beforehand."),
    ("hotel", 1, "The shower was mouldy and the drain was blocked. Disgusting."),
    ("hotel", 2, "Overpriced for what you get. Tiny room, tiny towels, tiny breakfast."),
    ("hotel", 1, "Our safe was broken into and the hotel denied any responsibility."),
    ("hotel", 3, "Convenient location, average room. Fine for one night, but I wouldn't stay a week."),
    ("hotel", 3, "Friendly staff, but the building needs renovation. You get what you pay for."),
    ("hotel", 3, "The bed was comfortable; the street noise was not. Bring earplugs."),
    ("hotel", 5, "<p><b>Wonderful</b> stay!</p><p>Room 412 had a view of the whole bay &amp; the staff were lovely.</p>"),
    ("hotel", 1, "&quot;Luxury suite&quot; my foot.<br />Broken blinds, stained carpet, dripping tap."),
    ("hotel", 4, "Great value<br>Clean rooms<br>Friendly staff<br>Only downside: parking is &pound;20 a night."),
    ("hotel", 5, "Booked via https://www.example.com/hotels/harbour-view and got a free breakfast upgrade. Fantastic stay."),
    ("hotel", 1, "Look at the guest photos at http://example.org/photos/8812 — that is the real state of the bathrooms."),
    ("hotel", 2, "The website www.example.net promised a free airport shuttle. It doesn't exist anymore."),
    ("hotel", 5, "Best hotel ever 🏨✨🌊 we want to come back next summer!"),
    ("hotel", 4, "Séjour très agréable à l'hôtel, petit-déjeuner copieux. Merci à toute l'équipe !"),
    ("hotel", 1, "Ｄｉｒｔｙ ｒｏｏｍ， ｒｕｄｅ ｓｔａｆｆ． Never again."),
    ("hotel", 2, "Check-in:\t45 min\nRoom:\t\tsmall\nWifi:   \tbroken"),
    ("hotel", 5, "Magniﬁcent\u00a0suite and ﬂawless service."),
    ("hotel", 5, (
        "We spent five nights here at the end of a long trip and it was exactly the soft landing we needed.\n\n"
        "The hotel occupies an old merchant's house near the river, and the renovation has kept the character — "
        "exposed beams, creaky wooden stairs, big sash windows — while adding modern bathrooms with proper "
        "rainfall showers and heated floors. Our room overlooked a small courtyard garden, so despite being in the "
        "centre of town it was completely quiet at night.\n\n"
        "The staff made the stay. On arrival the receptionist sat us down with a pot of tea and went through a "
        "map, marking a bakery, a bookshop and a walk along the old city walls that we would never have found on "
        "our own. When my partner mentioned a sore back, housekeeping turned up that evening with an extra firm "
        "pillow without us asking.\n\n"
        "Breakfast is served in a bright conservatory and is cooked to order: eggs any style, proper sourdough "
        "toast, local jams and a fruit plate that changed every day. The coffee was excellent, which matters a "
        "great deal to us.\n\n"
        "If I'm picky, the stairs might be a challenge for anyone with mobility issues, as there's no lift to the "
        "top floor, and the room safe was a bit fiddly. Neither bothered us.\n\n"
        "It's not the cheapest option in town, but the value is obvious. We have already recommended it to three "
        "friends."
    )),
    ("hotel", 1, (
        "Our stay at this so-called resort was the low point of an otherwise lovely holiday, and I want to warn "
        "other families before they book.\n\n"
        "We arrived after a long flight with two tired children, only to be told our pre-paid family suite was "
        "'unavailable' due to a plumbing problem. Instead we were given two separate standard rooms on different "
        "floors, which meant splitting up the family on the first night. We were promised a move the next "
        "morning. It took three days and four visits to reception.\n\n"
        "The standard rooms were dated and not very clean. There was dust thick enough to write in on top of the "
        "wardrobe, the balcony door didn't lock, and the air conditioning unit dripped onto the carpet all night, "
        "leaving a damp patch that smelled worse every day.\n\n"
        "The pool area, which was the main reason we chose the hotel, was overcrowded by nine in the morning "
        "because guests reserved sunbeds with towels at dawn and staff did nothing to stop it. The children's club "
        "advertised on the website was closed for the entire season.\n\n"
        "Food at the buffet was repetitive and often lukewarm, and the à la carte restaurant required bookings "
        "that were always 'full' when we tried.\n\n"
        "When we raised all this with the manager on our last day, he offered us a ten percent voucher for a "
        "future stay. I can't imagine ever using it. Avoid."
    )),
    ("hotel", 3, (
        "Mixed experience at this city-centre hotel, which I'd sum up as a great location let down by tired "
        "rooms.\n\n"
        "The location really is hard to beat. You are a five-minute walk from the main square, the cathedral and "
        "the best shopping streets, and there's a tram stop right outside the door that goes directly to the "
        "train station. For sightseeing, that convenience saved us a lot of time and taxi fares.\n\n"
        "The staff were also a highlight. Reception was helpful with restaurant bookings and printing our train "
        "tickets, and the night porter kindly stored our luggage on the final day long after checkout.\n\n"
        "The rooms, however, need work. Ours had a comfortable bed but worn carpet, a bathroom with cracked tiles "
        "and a shower that switched between scalding and freezing with no warning. The window faced the street, "
        "and while it was double-glazed, the trams started running at five in the morning and we heard every "
        "one.\n\n"
        "Breakfast was average: the usual hotel spread of cereals, cold meats and scrambled eggs that had clearly "
        "been sitting for a while. Fine, but not worth the extra charge; the café on the corner was better and "
        "cheaper.\n\n"
        "For a short city break where you'll be out most of the day, it's a reasonable choice, especially if you "
        "find a good rate. For a longer or more relaxed stay, I would look elsewhere."
    )),
    ("hotel", 5, "The bed was so comfortable that I asked for the mattress brand."),
    ("hotel", 4, "Reliable business hotel. Quiet rooms, a good desk and a decent gym."),
    ("hotel", 5, "Staff helped us find a pharmacy at midnight when our son got sick. Above and beyond."),
    ("hotel", 1, "Ants in the kitchenette and a fridge that didn't work."),
    ("hotel", 2, "The 'ocean view' was a sliver of water between two car parks."),
    ("hotel", 1, "The lift was broken for three days, and we were on the ninth floor with a baby."),
    ("hotel", 5, "Gorgeous boutique hotel with thoughtful little touches like fresh flowers and local snacks."),
    ("hotel", 2, "The heating couldn't be turned off, so we slept with the windows open in January."),
    ("hotel", 4, "Nice hostel-style hotel, very social, with clean shared bathrooms."),
    ("hotel", 1, "Smelled of cigarette smoke in a supposedly non-smoking room."),
    ("hotel", 5, "Perfect ski-in, ski-out location and a boot room that dries everything overnight."),
    ("hotel", 2, "Tiny bathroom where the door hits the toilet. Clearly nobody tested it."),
    ("hotel", 3, "The room was clean and quiet, but breakfast was poor and the gym was closed. An average stay."),
    ("hotel", 1, "They cancelled our booking the day before arrival and offered no alternative."),
    ("hotel", 3, "Decent airport hotel. Clean enough, noisy shuttle buses, forgettable breakfast."),
]

SOURCES = ("product", "restaurant", "movie", "app", "hotel")

SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("stars", pa.int64(), nullable=False),
    ]
)


def build_rows() -> list[dict]:
    rows = []
    for i, (source, stars, text) in enumerate(REVIEWS, start=1):
        # Fail loudly on a typo in the hand-written list rather than ship it.
        if source not in SOURCES or not 1 <= stars <= 5 or not text.strip():
            raise ValueError(f"bad sample row {i}: {(source, stars, text[:40])!r}")
        rows.append({"id": f"r{i:04d}", "text": text, "source": source, "stars": stars})
    texts = [r["text"] for r in rows]
    if len(set(texts)) != len(texts):
        raise ValueError("duplicate sample texts")
    return rows


def main(out_dir: Path | None = None) -> None:
    out_dir = out_dir or Path(__file__).resolve().parent
    rows = build_rows()

    with open(out_dir / "reviews.jsonl", "w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")

    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    pq.write_table(table, out_dir / "reviews.parquet")
    pacsv.write_csv(table, out_dir / "reviews.csv")
    print(f"wrote {len(rows)} rows to {out_dir}/reviews.{{jsonl,parquet,csv}}")


if __name__ == "__main__":
    main()
