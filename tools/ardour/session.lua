-- DGG Restore inside Ardour 7, headless.
--
-- Run by tools/ardour/run.sh with Ardour's Lua session tool, which uses the Dummy audio
-- backend (no sound card, no JACK):
--
--   ardour7-lua tools/ardour/session.lua WORK_DIR WAV PLUGIN_NAME EXPORT_PRESET_UUID
--
-- WORK_DIR           an empty temporary directory (the session and the export go there)
-- WAV                the clip to put on the track (tests/fixtures/audio/example.wav)
-- PLUGIN_NAME        the VST3 to insert ("DGG Restore")
-- EXPORT_PRESET_UUID an export preset writing 32-bit float WAV (run.sh installs one)
--
-- Three phases: (1) a new session with a track playing the WAV from 1 s on; (2) the plugin
-- inserted on the track: an offline bounce, "Capture" on, a real-time roll over the
-- region, the grown saved state, an export of the master bus; (3) the session closed and
-- reopened: the plugin and its state come back unchanged. With no restoration the plugin
-- passes audio through, so every rendering must equal the WAV sample for sample.
--
-- Every check prints "[ok]" or "[FAIL]"; the script ends with "RESULT: PASS", or raises a
-- Lua error (ardour7-lua then exits non-zero). The API used is Ardour 7.3's (Debian 12).

local WORK, WAV, PLUGIN, PRESET = arg[1], arg[2], arg[3] or "DGG Restore", arg[4]
assert(WORK and WAV and PRESET, "usage: ardour7-lua session.lua WORK_DIR WAV PLUGIN_NAME EXPORT_PRESET_UUID")
-- Ardour's file readers want absolute paths.
local function absolute(path) return path:sub(1, 1) == "/" and path or (os.getenv("PWD") .. "/" .. path) end
WORK, WAV = absolute(WORK), absolute(WAV)

local SESSION_DIR = WORK .. "/session" -- must not exist yet: create_session makes it
local SNAPSHOT = "dgg"
local TRS = ARDOUR.TransportRequestSource.TRS_UI

local failures = 0
local function check(ok, what)
	print(string.format("[%s] %s", ok and "ok" or "FAIL", what))
	if not ok then failures = failures + 1 end
	return ok
end

local function now_s() return ARDOUR.LuaAPI.monotonic_time() / 1e6 end

-- Polls cond() every 50 ms for at most timeout_s seconds.
local function wait_for(cond, timeout_s)
	local t0 = now_s()
	while not cond() do
		if now_s() - t0 > timeout_s then return false end
		sleep(0.05)
	end
	return true
end

-- The sample rate and channel count from a RIFF/WAVE header (walks the chunks).
local function wav_format(path)
	local f = assert(io.open(path, "rb"), "cannot open " .. path)
	local data = f:read(4096)
	f:close()
	assert(data:sub(1, 4) == "RIFF" and data:sub(9, 12) == "WAVE", path .. " is not a WAV file")
	local pos = 13
	while pos + 8 <= #data do
		local id, size = data:sub(pos, pos + 3), string.unpack("<I4", data, pos + 4)
		if id == "fmt " then
			local channels, rate = string.unpack("<I2I4", data, pos + 10)
			return rate, channels
		end
		pos = pos + 8 + size + (size % 2)
	end
	error("no fmt chunk in " .. path)
end

-- Reads channel `chan` of an ARDOUR.Readable into a Lua array of floats.
local shm = ARDOUR.DSP.DspShm(8192)
local function read_all(rd, chan)
	local out, pos, n = {}, 0, rd:readable_length()
	while pos < n do
		local got = rd:read(shm:to_float(0), pos, math.min(8192, n - pos), chan)
		if got <= 0 then break end
		local a = shm:to_float(0):array()
		for i = 1, got do out[#out + 1] = a[i] end
		pos = pos + got
	end
	return out
end

-- Largest |a[i] - b[i]| over the first n samples (math.huge when a is too short).
local function max_diff(a, b, n)
	if #a < n then return math.huge end
	local m = 0
	for i = 1, n do
		local d = math.abs(a[i] - b[i])
		if d > m then m = d end
	end
	return m
end

-- Compares every channel of a multichannel readable (a region) with the reference.
local function region_diff(rd, ref, n)
	if rd:n_channels() ~= #ref then return math.huge end
	local m = 0
	for c = 1, #ref do m = math.max(m, max_diff(read_all(rd, c - 1), ref[c], n)) end
	return m
end

-- Writes a mono 32-bit float WAV file.
local function write_wav_f32(path, x, rate)
	local n = #x
	local f = assert(io.open(path, "wb"), "cannot write " .. path)
	f:write("RIFF", string.pack("<I4", 36 + 4 * n), "WAVE",
		"fmt ", string.pack("<I4I2I2I4I4I2I2", 16, 3, 1, rate, rate * 4, 4, 32),
		"data", string.pack("<I4", 4 * n))
	for i = 1, n, 1024 do
		local j = math.min(n, i + 1023)
		f:write(string.pack("<" .. string.rep("f", j - i + 1), table.unpack(x, i, j)))
	end
	f:close()
end

local function save()
	-- save_state (snapshot_name, pending, switch_to_snapshot, template_only, for_archive, only_used_assets)
	return Session:save_state("", false, false, false, false, false) == 0
end

-- Size in bytes of the plugin's <Processor> element (its saved state included) in the
-- session file, plus any files Ardour keeps for plugin state in the session's plugins/.
-- Also returns the element's text.
local function plugin_state_bytes()
	local f = io.open(SESSION_DIR .. "/" .. SNAPSHOT .. ".ardour", "rb")
	if not f then return 0, "" end
	local xml = f:read("a")
	f:close()
	local name = PLUGIN:gsub("%p", "%%%0") -- the name, with Lua pattern characters escaped
	local node = xml:match('<Processor[^>]-name="' .. name .. '".-</Processor>') or ""
	local extra = 0
	local p = io.popen('du -sb "' .. SESSION_DIR .. '/plugins" 2>/dev/null')
	if p then extra = tonumber((p:read("a") or ""):match("^(%d+)")) or 0; p:close() end
	return #node + extra, node
end

-- Phase 1: a session with one track holding the WAV. ------------------------------------
--
-- ardour7-lua has no import binding (import lives in the GUI's Editor). So the clip is
-- put on the track the long way: bounce the empty track over the clip's length (Ardour
-- writes one mono source file per channel and makes a region of them), put that region
-- on the playlist, save and close the session, overwrite the source files with the
-- clip's channels, and open the session again. The region then plays the clip; the
-- first check below proves it sample for sample.
local function build_session()
	local rate, channels = wav_format(WAV)
	assert(create_session(SESSION_DIR, SNAPSHOT, rate), "could not create a session in " .. SESSION_DIR)
	check(true, string.format("created session %s at %d Hz (Dummy backend, %d-sample blocks)",
		SESSION_DIR, Session:sample_rate(), Session:get_block_size()))

	-- One readable per channel of the file.
	local ref = {}
	for c, rd in ipairs(ARDOUR.Readable.load(Session, WAV):table()) do ref[c] = read_all(rd, 0) end
	assert(#ref == channels and #ref[1] > 0, "could not read " .. WAV)
	local n = #ref[1]
	local pos = rate -- the region starts 1 s into the timeline

	local tracks = Session:new_audio_track(channels, 2, nil, 1, "DGG", ARDOUR.PresentationInfo.max_order,
		ARDOUR.TrackMode.Normal, true)
	assert(tracks:size() == 1, "could not add an audio track")
	local track = tracks:front()

	-- Ardour connects a new track's outputs to the master bus from a background thread:
	-- wait for that before saving (a session saved too early reopens with a silent master),
	-- and connect by hand should it not happen. The inputs are cut so that only the
	-- playlist feeds the track.
	local out = track:output()
	local function wired()
		for c = 0, 1 do
			if not out:audio(c):connected_to("Master/audio_in " .. (c + 1)) then return false end
		end
		return true
	end
	if not wait_for(wired, 10) then
		for c = 0, 1 do out:connect(out:audio(c), "Master/audio_in " .. (c + 1), nil) end
	end
	track:input():disconnect_all(nil)

	local region = track:bounce_range(0, n, ARDOUR.InterThreadInfo(), track:main_outs(), false, "example")
	assert(not region:isnil(), "could not bounce the empty track")
	track:playlist():add_region(region, Temporal.timepos_t(pos), 1, false, 0, 0, false)
	local paths = {}
	for c = 1, channels do paths[c] = region:source(c - 1):to_filesource():path() end
	assert(save(), "could not save the session")

	-- Drop every Lua reference into the session before closing it (a dangling one crashes).
	tracks, track, region, out = nil, nil, nil, nil
	collectgarbage()
	close_session()
	for c = 1, channels do write_wav_f32(paths[c], ref[c], rate) end
	os.execute('rm -f "' .. SESSION_DIR .. '"/peaks/*') -- stale waveform caches
	assert(load_session(SESSION_DIR, SNAPSHOT), "could not reopen the session")
	return ref, n, pos, rate
end

-- Phase 2: the plugin on the track. -------------------------------------------------------
local function test_plugin(ref, n, pos, rate)
	local track = Session:route_by_name("DGG"):to_track()
	local out = track:output()
	check(out:audio(0):connected_to("Master/audio_in 1") and out:audio(1):connected_to("Master/audio_in 2")
		and not track:input():audio(0):connected(), "the track plays into the master bus, its inputs unconnected")
	local region
	for r in track:playlist():region_list():iter() do region = r:to_audioregion() end
	assert(region and not region:isnil(), "the reopened session has no region")
	-- No 64-sample fades at the region's edges: the output must equal the clip exactly.
	region:set_fade_in_active(false)
	region:set_fade_out_active(false)
	check(region:position():samples() == pos and region:length():samples() == n
		and region_diff(region:to_readable(), ref, n) == 0,
		string.format("track 'DGG' plays %s (%d ch, %d samples) from %.1f s, sample for sample",
			WAV:match("[^/]+$"), #ref, n, pos / rate))

	-- The VST3 instance.
	local proc = ARDOUR.LuaAPI.new_plugin(Session, PLUGIN, ARDOUR.PluginType.VST3, "")
	if proc:isnil() then
		print("VST3 plugins Ardour knows:")
		for p in ARDOUR.LuaAPI.list_plugins():iter() do
			if p.type == ARDOUR.PluginType.VST3 then print("  " .. p.name .. " (" .. p.unique_id .. ")") end
		end
		error("Ardour has no VST3 plugin named '" .. PLUGIN .. "' (did the scanner index it?)")
	end
	assert(track:add_processor_by_index(proc, 0, nil, true) == 0, "could not insert the plugin on the track")
	local insert = proc:to_insert()
	local plugin = insert:plugin(0)
	check(plugin:name() == PLUGIN and insert:natural_input_streams():n_audio() == #ref
		and insert:natural_output_streams():n_audio() == #ref,
		string.format("inserted VST3 '%s' (%s), %d in / %d out, %d parameters", plugin:name(), plugin:maker(),
			insert:natural_input_streams():n_audio(), insert:natural_output_streams():n_audio(),
			plugin:parameter_count()))

	-- Offline: bounce the region through the plugin (Track:bounce_range runs the track's
	-- processors up to its outputs). With no restoration the plugin passes audio through.
	check(track:bounceable(track:main_outs(), false), "the track with the plugin can be bounced")
	local bounced = track:bounce_range(pos, pos + n, ARDOUR.InterThreadInfo(), track:main_outs(), false, "bounce")
	local d = bounced:isnil() and math.huge or region_diff(bounced:to_audioregion():to_readable(), ref, n)
	check(d == 0, string.format("offline bounce through the plugin equals the clip (max |diff| %g)", d))
	bounced = nil

	-- Switch "Capture" on (arms a take of the next playing stretch).
	local capture
	for i = 0, plugin:parameter_count() - 1 do
		if plugin:parameter_is_control(i) and plugin:parameter_is_input(i) and plugin:parameter_label(i) == "Capture" then
			capture = i
		end
	end
	if check(capture ~= nil, "the plugin has a 'Capture' parameter") then
		ARDOUR.LuaAPI.set_processor_param(proc, capture, 1)
		check(ARDOUR.LuaAPI.get_processor_param(proc, capture, true) > 0.5, "set 'Capture' on")
	end
	check(save(), "saved the session")
	local state_before = plugin_state_bytes()

	-- Roll the transport over the region in real time, then stop.
	Session:request_locate(0, false, ARDOUR.LocateTransportDisposition.MustStop, TRS)
	wait_for(function () return Session:transport_stopped() and Session:transport_sample() == 0 end, 10)
	track:peak_meter():reset_max()
	insert:clear_stats()
	local t0 = now_s()
	Session:request_roll(TRS)
	local rolled = wait_for(function () return Session:transport_sample() >= pos + n + rate // 10 end, 30)
	local rolled_s = now_s() - t0
	Session:request_stop(false, false, TRS)
	check(rolled, string.format("rolled the transport 0 -> %.2f s (%d samples) in %.1f s",
		Session:transport_sample() / rate, Session:transport_sample(), rolled_s))
	check(wait_for(function () return Session:transport_stopped() end, 10), "stopped the transport")

	-- The plugin ran in the process thread: Ardour timed its process calls.
	local timed, t = insert:get_stats(0, 0, 0, 0)
	check(timed, timed and string.format("the plugin processed while rolling (DSP time per cycle: min %.0f, avg %.0f, max %.0f us)",
		t[1], t[3], t[2]) or "the plugin processed while rolling (Ardour has no DSP timings for it)")

	-- The track's meter (post-fader, after the plugin) saw the clip's peak on every channel.
	for c = 1, #ref do
		local peak = 0
		for i = 1, n do peak = math.max(peak, math.abs(ref[c][i])) end
		local want = 20 * math.log(peak, 10)
		local got = track:peak_meter():meter_level(c - 1, ARDOUR.MeterType.MeterMaxPeak)
		check(math.abs(got - want) < 0.05, string.format("channel %d peak after the plugin while rolling: %.2f dBFS (clip: %.2f dBFS)", c, got, want))
	end

	-- The take is saved with the project: the plugin's state grows by the captured audio.
	if capture then
		ARDOUR.LuaAPI.set_processor_param(proc, capture, 0)
		sleep(1) -- the take reaches the plugin's background thread through a queue
		check(save(), "saved the session")
		local state_after = plugin_state_bytes()
		check(state_after > state_before + 100000, string.format(
			"the plugin's saved state grew with the captured take: %d -> %d bytes", state_before, state_after))
	end

	-- Export the session range of the master bus (freewheeling, faster than real time)
	-- with a 32-bit float preset and compare it with the clip.
	local export_dir = WORK .. "/export"
	local export = Session:simple_export()
	export:set_name("dgg-export")
	export:set_folder(export_dir)
	export:set_range(pos, pos + n)
	local exported = export:set_preset(PRESET) and export:check_outputs() and export:run_export()
	check(exported, "exported " .. export_dir .. "/dgg-export.wav (master bus, 32-bit float)")
	if exported then
		local audio = {}
		for c, rd in ipairs(ARDOUR.Readable.load(Session, export_dir .. "/dgg-export.wav"):table()) do
			audio[c] = read_all(rd, 0)
		end
		local d = #audio == #ref and 0 or math.huge
		for c = 1, math.min(#audio, #ref) do d = math.max(d, max_diff(audio[c], ref[c], n)) end
		check(d == 0, string.format("the export equals the clip (%d ch, max |diff| %g)", #audio, d))
	end
end

-- Phase 3: the project reopens with the plugin and its take. -----------------------------
local function test_reload()
	check(save(), "saved the session")
	local state_saved, xml_saved = plugin_state_bytes()
	collectgarbage()
	close_session()
	check(load_session(SESSION_DIR, SNAPSHOT) ~= nil, "reopened the session")
	local proc = Session:route_by_name("DGG"):nth_plugin(0)
	local restored = not proc:isnil() and proc:to_insert():plugin(0):name() == PLUGIN
	check(restored, "the reopened session has the plugin on the track")
	proc = nil
	check(save(), "saved the reopened session")
	local state_reloaded, xml_reloaded = plugin_state_bytes()
	check(restored and xml_reloaded == xml_saved and state_reloaded == state_saved, string.format(
		"the plugin restored its state, take included: saved again identically (%d bytes, %d after reopening)",
		state_saved, state_reloaded))
end

-- Main: run the phases, close the session whatever happened, then report. ---------------
local ok, err = pcall(function ()
	local ref, n, pos, rate = build_session()
	test_plugin(ref, n, pos, rate)
	collectgarbage() -- test_plugin's references into the session are gone now
	test_reload()
end)
collectgarbage() -- release the references into the session before closing it
if Session then close_session() end
if not ok then
	-- Ardour's bindings raise userdata, not a message, when a C++ call throws.
	print("[FAIL] " .. (type(err) == "string" and err or "Ardour raised an error (" .. tostring(err) .. ")"))
	failures = failures + 1
end
if failures > 0 then
	error(string.format("RESULT: FAIL (%d check%s failed)", failures, failures == 1 and "" or "s"), 0)
end
print("RESULT: PASS")
