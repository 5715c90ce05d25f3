// Building the page: elements (HTML and SVG) from tags, attributes and children. Strings become text
// nodes, never markup, so what the API returns cannot inject HTML.

export const $ = (selector) => document.querySelector(selector)

const SVG_NS = 'http://www.w3.org/2000/svg'

function build(el, attrs, children) {
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue
    if (key.startsWith('on')) el.addEventListener(key.slice(2), value)
    else if (key === 'class') el.setAttribute('class', value)
    else el.setAttribute(key, value === true ? '' : String(value))
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue
    el.append(typeof child === 'string' || typeof child === 'number' ? String(child) : child)
  }
  return el
}

/** A DOM element: h('td', {class: 'x'}, 'text', child…). */
export const h = (tag, attrs = {}, ...children) => build(document.createElement(tag), attrs, children)

/** An SVG element, the same way: svg('rect', {x: 0, y: 0, width: 4, height: 10}). */
export const svg = (tag, attrs = {}, ...children) =>
  build(document.createElementNS(SVG_NS, tag), attrs, children)
