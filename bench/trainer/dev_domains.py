"""Development domains: where product defaults of a text-only run are chosen, never where they are reported.

bench/trainer/acoustic_domains.py holds the two domains whose WER the notes report (aviation, medical).
A setting that a text-only run cannot tune for itself (it has no audio), such as the decoder weights,
is chosen on these three other domains instead, so the reported numbers stay held out. Each domain
has training TEXT and DEV sentences built like the reported test sets: spoken by espeak-ng in the same
rotation of voices and speeds, never in the training text, mixing its domain words with ordinary
English the text does not have. Two of them also have ADAPT sentences (other sentences again) for the
audio + transcript pairs of a text + audio run, so that settings of the adaptation can be chosen here too.
"""

from __future__ import annotations

WORKSHOP_TEXT = """\
Replace the front brake pads and resurface the rotors.
The check engine light came on after the oil change.
Rotate the tires and set the pressure to thirty five psi.
The serpentine belt is cracked and must be replaced.
Flush the coolant and refill with the specified antifreeze.
The alternator output was low during the charging test.
Replace the cabin air filter and the engine air filter.
Inspect the ball joints and tie rod ends for play.
The transmission fluid is dark and smells burnt.
Torque the lug nuts in a star pattern.
Scan the engine computer for stored fault codes.
The catalytic converter failed the emissions test.
Bleed the brake lines after replacing the master cylinder.
Check the spark plugs for carbon fouling.
The timing belt is due at one hundred thousand miles.
Replace the worn wiper blades on both sides.
The power steering pump whines when the wheel is turned.
Inspect the exhaust manifold gasket for leaks.
Balance the wheels and align the front end.
The radiator hose is swollen near the clamp.
Replace the battery terminals and clean the corrosion.
The fuel injector on cylinder three is misfiring.
Check the differential fluid level and top it off.
The shock absorbers are leaking and must be replaced.
Reset the maintenance reminder after the service.
Inspect the constant velocity boot for tears.
The thermostat is stuck open and the engine runs cold.
Replace the oxygen sensor upstream of the converter.
Test the starter draw with the battery load tester.
The wheel bearing hums above forty miles per hour.
"""

WORKSHOP_DEV = [
    "The customer heard a strange noise when turning left.",
    "Please call the owner before doing any extra work.",
    "We finished the repair early and washed the car.",
    "The mirror on the passenger door is broken.",
    "Write the total cost on the invoice and sign it.",
    "The headlights are dim and need new bulbs.",
    "Her daughter will pick up the truck on Friday.",
    "A nail was stuck in the rear tire.",
    "The window does not close all the way.",
    "Keep the old parts in a box for the customer.",
    "The seat belt warning chime never stops.",
    "Order a new key from the dealer tomorrow.",
]

HELPDESK_TEXT = """\
Reset the user password and unlock the account.
The laptop cannot connect to the wireless network.
Reinstall the printer driver and restart the spooler.
The virtual private network client fails to authenticate.
Clear the browser cache and try the login again.
The mailbox is full and must be archived.
Map the shared drive with the correct credentials.
The server ran out of disk space overnight.
Update the operating system and reboot the workstation.
Enable two factor authentication for the new account.
The monitor shows no signal after the docking station update.
Restore the deleted file from last night's backup.
Renew the software license before it expires.
The firewall is blocking the remote desktop port.
Assign the ticket to the network team.
Replace the failed hard drive in the storage array.
The application crashes when the report is exported.
Add the user to the finance security group.
The domain controller is not replicating.
Check the event log for authentication errors.
Install the antivirus agent on every workstation.
The keyboard is not detected after the upgrade.
Reimage the laptop with the standard build.
The certificate on the web server has expired.
Increase the mailbox quota for the sales team.
Disable the account of the departing employee.
The printer shows a paper jam in tray two.
Patch the database server during the maintenance window.
Verify the backup job completed without errors.
The switch port is flapping on the third floor.
"""

HELPDESK_DEV = [
    "The manager asked for a new phone for her assistant.",
    "Nobody in the office can open the shared calendar.",
    "He forgot his password again this morning.",
    "Please order two more chairs for the meeting room.",
    "The screen went black while she was typing a letter.",
    "We moved the old computers to the basement.",
    "The camera does not work during video calls.",
    "Send a short message to everyone about the outage.",
    "The battery drains quickly when the laptop is asleep.",
    "Write down the serial number before you return it.",
    "The speakers make a loud buzzing sound.",
    "Ask the visitor to sign in at the front desk.",
]

KITCHEN_TEXT = """\
Preheat the convection oven to three hundred fifty degrees.
Label and date every container in the walk in cooler.
Sanitize the cutting boards between raw chicken and vegetables.
The dish machine rinse temperature was below one hundred eighty.
Hold hot soups above one hundred thirty five degrees.
Thaw the frozen shrimp under cold running water.
Rotate the stock so the oldest product is used first.
The fryer oil is dark and must be changed tonight.
Calibrate the probe thermometer in ice water.
Prep the mise en place before the dinner rush.
The grease trap is due for cleaning this week.
Reduce the stock by half for the sauce.
Record the cooler temperatures twice per shift.
Discard any cooked rice left out over four hours.
The hood filters need degreasing every week.
Blanch the green beans and shock them in ice water.
Store raw meat on the bottom shelf of the cooler.
The health inspector checks the hand sink first.
Sear the steaks and finish them in the oven.
The walk in freezer door gasket is torn.
Portion the salmon into six ounce fillets.
Wash hands before handling ready to eat food.
The salad station needs more chopped romaine.
Cool the chili from one hundred thirty five to seventy within two hours.
Check the delivery temperature of the dairy products.
The slicer must be cleaned after every use.
Whisk the eggs and season the omelet mix.
Change gloves after touching raw poultry.
Fill the sanitizer buckets at the correct concentration.
The pastry chef proofed the dough overnight.
"""

KITCHEN_DEV = [
    "The waiter dropped a tray of glasses near the bar.",
    "Please tell the owner that we need more napkins.",
    "A large party arrives at seven for a birthday dinner.",
    "The new cook starts on Monday morning.",
    "Wipe the tables and sweep the floor before closing.",
    "The guest at table four is allergic to peanuts.",
    "We ran out of lemons during lunch.",
    "Turn off the music when the last customer leaves.",
    "The coffee machine leaks water onto the counter.",
    "Her manager asked her to work late on Saturday.",
    "Put the clean plates back on the shelf.",
    "The delivery truck was late again this week.",
]

WORKSHOP_ADAPT = [
    "Replace the rear brake shoes and adjust the parking brake.",
    "The coolant reservoir was low after the test drive.",
    "Check the tire tread depth on all four wheels.",
    "The battery failed the load test this morning.",
    "Inspect the drive belt tensioner for noise.",
    "Replace the front wheel bearing on the left side.",
    "The engine oil was changed and the filter replaced.",
    "Scan for fault codes after clearing the check engine light.",
    "The brake fluid is dark and must be flushed.",
    "Torque the axle nut to the specified value.",
    "Inspect the exhaust for leaks near the converter.",
    "The spark plug wires are cracked and worn.",
    "Replace the upper radiator hose and the clamps.",
    "Check the transmission fluid level with the engine running.",
    "The steering rack boot is torn on the right side.",
    "Clean the throttle body and reset the idle.",
    "The air conditioning compressor clutch does not engage.",
    "Replace the fuel filter and check for leaks.",
    "Balance the front wheels after mounting the new tires.",
    "The rear shocks are worn and bouncing.",
    "Inspect the brake calipers for sticking pistons.",
    "Replace the thermostat gasket and refill the coolant.",
    "The alternator belt squeals on a cold start.",
    "Record the mileage on the repair order.",
]

HELPDESK_ADAPT = [
    "Reset the password for the new employee account.",
    "The printer driver was reinstalled on the laptop.",
    "Check the wireless network settings on the workstation.",
    "The backup job failed because the disk was full.",
    "Unlock the account after three failed logins.",
    "Update the antivirus definitions on every server.",
    "The virtual private network connection drops every hour.",
    "Restore the mailbox from the weekly backup.",
    "Assign the ticket to the server team.",
    "The docking station does not detect the monitor.",
    "Renew the certificate on the mail server.",
    "Add the new user to the sales security group.",
    "The shared drive is not mapped after the reboot.",
    "Patch the workstation during the maintenance window.",
    "Check the firewall log for blocked connections.",
    "The laptop keyboard was replaced under warranty.",
    "Reimage the workstation with the latest build.",
    "The application freezes when the report opens.",
    "Increase the disk space on the file server.",
    "Enable the account of the returning employee.",
    "The switch on the second floor was restarted.",
    "Clear the print queue and restart the spooler service.",
    "Verify that two factor authentication is enabled.",
    "Record the asset tag of the replaced laptop.",
]

DEV_DOMAINS = {
    "workshop": (WORKSHOP_TEXT, WORKSHOP_DEV),
    "helpdesk": (HELPDESK_TEXT, HELPDESK_DEV),
    "kitchen": (KITCHEN_TEXT, KITCHEN_DEV),
}

# (text, adaptation sentences, dev sentences): the shape of acoustic_domains.DOMAINS, for bench_acoustic
DEV_AUDIO_DOMAINS = {
    "workshop": (WORKSHOP_TEXT, WORKSHOP_ADAPT, WORKSHOP_DEV),
    "helpdesk": (HELPDESK_TEXT, HELPDESK_ADAPT, HELPDESK_DEV),
}
