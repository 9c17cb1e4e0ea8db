" Drives Vim 9 + ALE with editors/vim/aigents.vim like a user: opens a line at the end of the
" file, types $AIGENTS_TYPE in insert mode, asks for completion with <Plug>(ale_complete) (the
" README's mapping), waits for the popup (fed by aigents-lsp), accepts the selected item with
" CTRL-Y, saves and quits. Records what it saw as JSON in $AIGENTS_RESULTS; test_vim.py asserts.

let s:results = {'steps': []}
let s:deadline = 0

function! s:Note(step) abort
  call add(s:results.steps, printf('%.1f %s', reltimefloat(reltime(s:start)), a:step))
endfunction

function! s:Finish(error) abort
  if !empty(a:error)
    let s:results.error = a:error
  endif
  let s:results.lines = getline(1, '$')
  let s:results.ale_completion_info = get(b:, 'ale_completion_info', {})
  let s:results.ale_completion_result = get(b:, 'ale_completion_result', v:null)
  let s:results.messages = execute('messages')
  call writefile([json_encode(s:results)], $AIGENTS_RESULTS)
  qall!
endfunction

function! s:Type(timer) abort
  call s:Note('typing')
  call feedkeys('Go' . $AIGENTS_TYPE, 'nt')
  call feedkeys("\<Plug>(ale_complete)", 't')
  let s:deadline = reltimefloat(reltime(s:start)) + str2float($AIGENTS_TIMEOUT)
  call timer_start(100, function('s:WaitForMenu'), {'repeat': -1})
endfunction

" Polls (in insert mode) for the completion popup holding an item from the server.
function! s:WaitForMenu(timer) abort
  try
    if reltimefloat(reltime(s:start)) > s:deadline
      call timer_stop(a:timer)
      call s:Finish('no completion popup within ' . $AIGENTS_TIMEOUT . ' s (mode ' . mode() . ')')
      return
    endif
    if !pumvisible()
      let s:polls = get(s:, 'polls', 0) + 1
      if s:polls % 50 == 0 && mode() is# 'i'
        " Nothing yet (the server may still be starting): ask again, as a user would.
        call s:Note('asking again')
        call feedkeys("\<Plug>(ale_complete)", 't')
      endif
      return
    endif
    call timer_stop(a:timer)
    let l:info = complete_info(['items', 'selected'])
    let s:results.items = map(copy(l:info.items), {_, item -> item.word})
    let s:results.selected = l:info.selected
    call s:Note('popup: ' . string(s:results.items))
    " Select the first item (ALE opens the menu with none selected), accept it, leave insert mode,
    " save; then record and quit.
    call feedkeys((l:info.selected < 0 ? "\<C-n>" : '') . "\<C-y>\<Esc>:write\<CR>", 't')
    call timer_start(500, {-> s:Finish('')})
  catch
    call timer_stop(a:timer)
    call s:Finish(v:exception . ' at ' . v:throwpoint)
  endtry
endfunction

let s:start = reltime()
" Give ALE a moment to start the server on BufEnter (it also starts on the first request).
call timer_start(1500, function('s:Type'))
