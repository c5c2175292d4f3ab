"""Two held-out domains for the acoustic-adaptation benchmark, spoken by espeak-ng.

Each domain has training TEXT (what the LM learns), ADAPT sentences (spoken: the audio+transcript
pairs the acoustic model adapts on) and TEST sentences (spoken by the same rotation of voices and
speeds, never in the training text or the adaptation pairs, and using words the training text does
not have). The aviation domain's adaptation audio is long recordings with a VTT transcript cut by
cue times, as customers upload it.
"""

from __future__ import annotations

from tests.trainer.medical_domain import ADAPTATION_SENTENCES, TRAINING_TEXT

AVIATION_TEXT = """\
Inspect the fan blades for nicks and dents before the first flight of the day.
The borescope inspection of the high pressure turbine found no cracks.
Replace the hydraulic filter element on the left main landing gear.
Torque the fan cowl latches and record the values in the logbook.
Check the engine oil quantity within thirty minutes after shutdown.
The starter generator was removed and sent to the repair shop.
Service the nitrogen pressure in the nose landing gear strut.
Inspect the pitot probe heater for correct operation.
The aft cargo door seal is worn and must be replaced.
Perform a leak check on the fuel manifold after installation.
Lubricate the flap track rollers with approved grease.
The auxiliary power unit failed to start during the ground run.
Replace the brake assembly when the wear pin is flush.
Inspect the wing leading edge for corrosion and delamination.
The hydraulic pump case drain filter showed metal particles.
Record the tire pressure of each main wheel in the logbook.
Remove the access panel to inspect the aileron control cable.
The borescope showed thermal distress on the combustion liner.
Verify the torque of the engine mount bolts.
The fuel quantity indication was erratic on the right tank.
Inspect the thrust reverser blocker doors for damage.
Replace the cabin pressure controller and perform an operational test.
Clean the fuel nozzle and check the spray pattern.
The oil filter bypass indicator popped during the engine run.
Check the elevator trim tab free play against the limits.
Drain the fuel sumps and check for water contamination.
The landing gear retraction test was completed without faults.
Inspect the compressor inlet for foreign object damage.
Replace the worn bushings on the nose gear steering actuator.
The static ports must be covered during the wash.
"""

AVIATION_ADAPT = [
    "Inspect the hydraulic reservoir level before the flight.",
    "The borescope inspection found a crack in the turbine blade.",
    "Replace the fuel filter and perform a leak check.",
    "Torque the wheel nuts to the specified value.",
    "The engine oil level was low after the ground run.",
    "Remove the starter generator for repair.",
    "Check the tire pressure on the nose wheel.",
    "Inspect the flap actuator for hydraulic leaks.",
    "Record the serial number of the removed pump.",
    "The cargo door actuator was replaced and tested.",
    "Lubricate the landing gear hinge points.",
    "Inspect the combustion liner with the borescope.",
    "The fuel quantity probe was replaced in the left tank.",
    "Check the brake wear pins on all main wheels.",
    "Clean the static ports and check for damage.",
    "The auxiliary power unit oil filter was changed.",
    "Inspect the engine mount for cracks and corrosion.",
    "Replace the pitot probe and perform a heater test.",
    "Drain the water from the fuel sump.",
    "The thrust reverser failed the operational test.",
    "Verify the cabin pressure controller settings.",
    "Inspect the compressor blades for erosion.",
    "Service the nose gear strut with nitrogen.",
    "The hydraulic pump was removed for overhaul.",
    "Check the control cable tension on the elevator.",
    "The fan cowl latch was found open after landing.",
    "Replace the brake assembly on the right main gear.",
    "Record the torque values in the aircraft logbook.",
    "Inspect the leading edge for bird strike damage.",
    "The oil pressure indication was normal during the run.",
    "Install a new seal on the cargo door.",
    "Perform a functional test of the fuel pump.",
]

AVIATION_TEST = [
    "The inspector noted corrosion near the rear spar.",
    "Tighten the clamp on the fuel line and check for leaks again.",
    "The mechanic replaced the cracked window in the cockpit.",
    "Please write down every measurement you take today.",
    "The brake temperature was very high after the rejected takeoff.",
    "We found a loose bolt on the rudder hinge bracket.",
    "The technician cleaned the engine intake before the inspection.",
    "Check the battery voltage before starting the engine.",
    "The crew reported a strong vibration during the climb.",
    "Replace the damaged antenna on the lower fuselage.",
    "The hydraulic leak was traced to a worn fitting.",
    "Send the removed part back to the supplier with the report.",
]

MEDICAL_TEXT = TRAINING_TEXT  # the trainer tests' medical notes

MEDICAL_ADAPT = ADAPTATION_SENTENCES

MEDICAL_TEST = [
    "The nurse noticed the patient was confused this morning.",
    "Please call the family to discuss the plan.",
    "The patient walked down the hallway without help.",
    "Give the medicine with food to avoid an upset stomach.",
    "The doctor explained the risks of the surgery.",
    "His daughter will bring the medication list tomorrow.",
    "The patient was started on lisinopril for high blood pressure.",
    "Oxygen saturation was ninety percent on room air.",
    "Chest x-ray shows left lower lobe pneumonia.",
    "The patient slept well and ate most of breakfast.",
    "Remove the bandage and keep the wound clean and dry.",
    "Blood pressure was controlled with metoprolol.",
]

DOMAINS = {
    "aviation": (AVIATION_TEXT, AVIATION_ADAPT, AVIATION_TEST),
    "medical": (MEDICAL_TEXT, MEDICAL_ADAPT, MEDICAL_TEST),
}
